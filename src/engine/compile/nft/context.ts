// Shared state of one nftables compilation: the diagnostics found so far and the named
// objects (sets, counters, quotas) that rules ask for while they are compiled. Objects
// are declared once, however many rules refer to them (an ACCOUNT table used from
// three chains is still two sets and one counter).
import { error, type Diagnostic, type Path } from "../../diagnostics.ts";
import type { Chain, Counter, CtHelper, NamedMap, NamedSet, Quota } from "../../nft/index.ts";
import type { Match, Policy } from "../../policy/index.ts";
import type { FailsafeContext } from "../failsafe.ts";

/** The one table every Palisade rule lives in. */
export const TABLE = "palisade";
export const FAMILY = "inet" as const;

export type Fam = "ipv4" | "ipv6";
export const FAMS: readonly Fam[] = ["ipv4", "ipv6"];

export type { FailsafeContext };

export interface CompileContext {
  failsafe?: FailsafeContext;
}

export class Ctx {
  readonly diagnostics: Diagnostic[] = [];
  readonly sets = new Map<string, NamedSet | NamedMap>();
  readonly counters = new Map<string, Counter>();
  readonly quotas = new Map<string, Quota>();
  /** Conntrack helper objects by name (one per helper and protocol). */
  readonly ctHelpers = new Map<string, CtHelper>();
  /** Chains the compiler adds for a rule (recent hit counts), with their rules, by name. */
  readonly chains = new Map<string, { name: string; chain: Chain; rules: RuleBody[] }>();
  /** "chain/index" of hit-count rules in the check-then-stamp idiom (compile/hitcount.ts stampAfterRules). */
  stampAfter: ReadonlySet<string> = new Set();
  /** "chain/index" of hit-count rules an earlier rule already counts for (compile/hitcount.ts countedBeforeRules). */
  countedBefore: ReadonlySet<string> = new Set();
  /** Lists counted where they are stamped, with their counters (compile/hitcount.ts stampCountedLists). */
  stampCounted: ReadonlyMap<string, NonNullable<Match["recent"]>[]> = new Map();
  /** Why each generated object exists, to explain a name clash. */
  private readonly owners = new Map<string, string>();

  constructor(
    readonly policy: Policy,
    readonly options: CompileContext = {},
  ) {}

  error(path: Path, code: string, message: string): void {
    this.diagnostics.push(error(path, code, message));
  }

  get failed(): boolean {
    return this.diagnostics.some((d) => d.severity === "error");
  }

  /**
   * Declare a set once. A second declaration under the same name must be identical
   * (same JSON); otherwise two features want one name and the policy is refused.
   */
  declareSet(set: NamedSet | NamedMap, owner: string, path: Path): void {
    this.declare(this.sets, set, owner, path, "set");
  }

  /** Declare a generated chain once; a second declaration must be identical. */
  declareChain(chain: Chain, rules: RuleBody[], owner: string, path: Path): void {
    if (Object.hasOwn(this.policy.chains, chain.name)) {
      this.error(
        path,
        "nft_name_clash",
        `${owner} needs the nftables chain "${chain.name}", which the policy already has; rename that chain`,
      );
      return;
    }
    this.declare(this.chains, { name: chain.name, chain, rules }, owner, path, "chain");
  }

  declareCounter(counter: Counter, owner: string, path: Path): void {
    this.declare(this.counters, counter, owner, path, "counter");
  }

  declareQuota(quota: Quota, owner: string, path: Path): void {
    this.declare(this.quotas, quota, owner, path, "quota");
  }

  private declare<T extends { name: string }>(
    map: Map<string, T>,
    obj: T,
    owner: string,
    path: Path,
    kind: string,
  ): void {
    const prev = map.get(obj.name);
    const key = `${kind} ${obj.name}`;
    if (!prev) {
      map.set(obj.name, obj);
      this.owners.set(key, owner);
      return;
    }
    if (JSON.stringify(prev) === JSON.stringify(obj)) return;
    this.error(
      path,
      "nft_name_clash",
      `${owner} needs the nftables ${kind} "${obj.name}", which ${this.owners.get(key) ?? "another object"} already defines differently; rename one of them`,
    );
  }
}

/** One compiled rule: its nft statement text and its comment. */
export interface RuleBody {
  body: string;
  comment: string;
}

/** A TEE clone, emitted in the ip/ip6 table (see tee.ts). */
export interface TeeRule extends RuleBody {
  fam: Fam;
}
