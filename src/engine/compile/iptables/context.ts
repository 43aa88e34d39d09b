// Shared state of one iptables-restore rendering: the diagnostics found so far, the
// families, and the fixed table/builtin-chain layout of xtables.
import { error, type Diagnostic, type Path } from "../../diagnostics.ts";
import type { Policy } from "../../policy/index.ts";
import type { FailsafeContext } from "../failsafe.ts";
import type { TargetCapabilities } from "../hitcount.ts";

export type Fam = "ipv4" | "ipv6";
export const FAMS: readonly Fam[] = ["ipv4", "ipv6"];

/** Tables in the order they are written (packet order at prerouting: raw, mangle, nat; security after filter; rawpost last). */
export const TABLES = ["raw", "mangle", "nat", "filter", "security", "rawpost"] as const;
export type Table = (typeof TABLES)[number];

export type { FailsafeContext };

/** What an earlier apply left in the kernel for one family (see installed.ts). */
export interface InstalledState {
  /** table -> Palisade-owned chains present (PAL-*, PALISADE-*). */
  chains: Partial<Record<Table, string[]>>;
  /** table -> builtin chains (upper case) that already hold the jump to PALISADE-<chain>. */
  jumps: Partial<Record<Table, string[]>>;
}

export interface IptablesRenderContext {
  failsafe?: FailsafeContext;
  /** What the host's agent reported (its kernel decides e.g. the largest recent --hitcount). */
  capabilities?: TargetCapabilities;
  /**
   * Kernel state from a previous apply (parseInstalled(iptables-save)). Without it the text
   * assumes a host with no Palisade chains yet: it inserts the jumps from the builtin chains.
   */
  installed?: Partial<Record<Fam, InstalledState>>;
}

export class IptCtx {
  readonly diagnostics: Diagnostic[] = [];
  constructor(
    readonly policy: Policy,
    readonly options: IptablesRenderContext = {},
  ) {}

  error(path: Path, code: string, message: string): void {
    // One family's pass may find what the other already reported: keep one copy.
    const d = error(path, code, message);
    if (!this.diagnostics.some((x) => x.path === d.path && x.code === d.code && x.message === d.message))
      this.diagnostics.push(d);
  }

  get failed(): boolean {
    return this.diagnostics.some((d) => d.severity === "error");
  }
}

/** Where a rule is being rendered: what the match and action renderers need to know. */
export interface RuleEnv {
  ctx: IptCtx;
  fam: Fam;
  table: Table;
  hook?: string;
  /** Seed for names derived from the rule (limit-over buckets). */
  seed: string;
  /** JSON path of the match object. */
  path: Path;
}
