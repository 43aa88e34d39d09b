// Drift: does the kernel still hold what the agent applied? The baseline is the kernel's
// own reading right after an apply (so nft's normalisation of what we wrote never looks
// like drift), normalised to what an operator would call "the rules" and the objects they
// use (sets, maps, counters, quotas, ct helpers): no handles, no counter values, no quota
// usage, no elements of sets the kernel fills itself (dynamic/timeout sets, e.g. accounting).
// A later reading is normalised the same way and compared object by object; rules are
// compared in order per chain.
// Restoring re-applies the desired text through the applier (incremental: counters kept).

import { readFile, rm } from "node:fs/promises";
import { helperProtocolName, type Driver, type RulesetState, type TableDefinition } from "../engine/index.ts";
import { writeFileAtomic } from "./atomic.ts";
import type { Applier } from "./apply.ts";
import { errorText } from "./errors.ts";
import type { Logger } from "../runtime/log.ts";
import { declaredByTables } from "./kernel/plan.ts";
import { readForDrift } from "./kernel/read.ts";
import { declaredObjects, parseStatements, tableKey } from "./kernel/statements.ts";

/** Normalised objects, key -> canonical JSON. Rules: key "rule <table> <chain>" -> list. */
export interface Normalised {
  objects: Record<string, string>;
  rules: Record<string, string[]>;
  /**
   * ct helper objects, apart from `objects`: a baseline saved without them (an older agent's)
   * compares none, and an older agent reading a newer baseline ignores them; either way an
   * upgrade or a downgrade reports no drift for the policy's own helpers.
   */
  ctHelpers?: Record<string, string>;
}

function stripState(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripState);
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (k === "handle" || k === "expires") continue;
      // An anonymous counter in a rule ({"counter": {"packets", "bytes"}}) -> {"counter": null}.
      if (k === "counter" && x && typeof x === "object" && "packets" in (x as object)) {
        o[k] = null;
        continue;
      }
      o[k] = stripState(x);
    }
    return o;
  }
  return v;
}

const canon = (v: unknown) => JSON.stringify(stripState(v));

/** `dynamic`: "family table kind name" of sets whose elements are not compared. */
export function normalise(st: RulesetState, dynamic: Set<string>): Normalised {
  const ctHelpers: Record<string, string> = {};
  const n: Normalised = { objects: {}, rules: {}, ctHelpers };
  for (const t of st.tables) n.objects[`table ${tableKey(t.family, t.name)}`] = canon({ comment: t.comment });
  for (const c of st.chains)
    n.objects[`chain ${tableKey(c.family, c.table)} ${c.name}`] = canon({ ...c, handle: undefined });
  for (const s of st.sets) {
    const key = `${tableKey(s.family, s.table)} ${s.kind} ${s.name}`;
    const elements = dynamic.has(key)
      ? []
      : s.elements.map((e) => e.key + (e.value !== undefined ? ` : ${e.value}` : "")).sort();
    n.objects[`${s.kind} ${tableKey(s.family, s.table)} ${s.name}`] = canon({
      type: s.type,
      map: s.map,
      size: s.size,
      timeout: s.timeout,
      counter: s.counter,
      comment: s.comment,
      elements,
    });
  }
  for (const c of st.counters)
    n.objects[`counter ${tableKey(c.family, c.table)} ${c.name}`] = canon({ comment: c.comment });
  for (const q of st.quotas)
    n.objects[`quota ${tableKey(q.family, q.table)} ${q.name}`] = canon({
      mode: q.mode,
      bytes: q.bytes,
      comment: q.comment,
    });
  for (const h of st.ctHelpers)
    ctHelpers[`ct helper ${tableKey(h.family, h.table)} ${h.name}`] = canon({
      type: h.type,
      // 6/17 where /etc/protocols is missing: both readings compare equal.
      protocol: h.protocol === undefined ? undefined : helperProtocolName(h.protocol),
      // Only where it is not the table's family (nft's default, what the compiler writes), so
      // a baseline saved before it was compared still equals a reading of the same helper.
      l3proto: h.l3proto === undefined || h.l3proto === h.family ? undefined : h.l3proto,
    });
  for (const r of st.rules) {
    const key = `rule ${tableKey(r.family, r.table)} ${r.chain}`;
    (n.rules[key] ??= []).push(canon({ expr: r.expr, comment: r.comment }));
  }
  return n;
}

/** Human-readable differences; empty when equal. */
export function compare(want: Normalised, have: Normalised, limit = 20): string[] {
  const out: string[] = [];
  const objects = (w: Record<string, string>, h: Record<string, string>) => {
    for (const k of new Set([...Object.keys(w), ...Object.keys(h)])) {
      if (!(k in h)) out.push(`missing ${k}`);
      else if (!(k in w)) out.push(`unexpected ${k}`);
      else if (w[k] !== h[k]) out.push(`changed ${k}`);
    }
  };
  objects(want.objects, have.objects);
  if (want.ctHelpers) objects(want.ctHelpers, have.ctHelpers ?? {});
  for (const k of new Set([...Object.keys(want.rules), ...Object.keys(have.rules)])) {
    const a = want.rules[k] ?? [];
    const b = have.rules[k] ?? [];
    if (a.length !== b.length) out.push(`${k}: ${b.length} rules, expected ${a.length}`);
    const i = a.findIndex((x, j) => x !== b[j]);
    const extra = i < 0 && b.length > a.length ? a.length : i;
    if (extra >= 0) out.push(`${k}: rule ${extra + 1} differs: ${(b[extra] ?? "(none)").slice(0, 160)}`);
  }
  return out.slice(0, limit);
}

export interface DriftReport {
  drifted: boolean;
  details: string;
  restored: boolean;
}

export interface Baseline {
  text: string;
  dynamic: string[];
  normalised: Normalised;
  /**
   * "numeric": read with protocols as numbers (`nft -p`), so installing or removing
   * /etc/protocols (netbase) between an apply and a check is not drift; kept in its own file
   * (numericFile). Absent in a baseline an older agent saved: it was read with names, and so
   * are its checks, until the next apply records a new one.
   */
  protocols?: "numeric";
}

/**
 * Where a baseline read with numeric protocols is kept: beside the file an older agent reads
 * (which it would check with protocol names, every such rule then drift), so that after a
 * downgrade it finds no baseline and waits for its next apply.
 */
export const numericFile = (file: string) => `${file.replace(/\.json$/, "")}.numeric.json`;

/** The kernel as `b` was read, normalised: the same way every time. */
async function readAs(driver: Driver, b: Pick<Baseline, "dynamic" | "protocols">): Promise<Normalised> {
  const dynamic = new Set(b.dynamic);
  return normalise(await readForDrift(driver, { numericProtocols: b.protocols === "numeric", dynamic }), dynamic);
}

/** Kernel-filled sets declared by the desired text, as "family table kind name". */
export function dynamicSets(text: string): Set<string> {
  const out = new Set<string>();
  for (const [k, t] of declaredObjects(parseStatements(text))) for (const d of t.dynamic) out.add(`${k} ${d}`);
  return out;
}

/**
 * The same from the compiled tables of the text (declaredByTables, which the incremental
 * plan reads in place of the text too): parsing a 10k-rule text for its few set
 * declarations cost ~0.15-0.2 s of the agent's CPU at every Confirm (bench/agent-apply.ts).
 */
export function dynamicSetsOfTables(tables: TableDefinition[]): Set<string> {
  const out = new Set<string>();
  for (const [k, t] of declaredByTables(tables)) for (const d of t.dynamic) out.add(`${k} ${d}`);
  return out;
}

export class DriftDetector {
  private baseline: Baseline | undefined;

  constructor(
    private readonly driver: Driver,
    private readonly applier: Applier,
    private readonly log: Logger,
    /** Where the baseline is kept across restarts (state dir); none = memory only. */
    private readonly file?: string,
  ) {}

  /**
   * Load a baseline saved by a previous run. `appliedText`: the text applied.json records.
   * A baseline of another text, or any baseline when there is no applied.json (a first
   * deploy killed between the two files), is not used: that version was never committed,
   * recovery takes it out of the kernel, and a drift restore would put it back unconfirmed.
   */
  async load(appliedText: string | undefined): Promise<boolean> {
    if (!this.file) return false;
    let b: Baseline | undefined;
    for (const f of [numericFile(this.file), this.file]) {
      try {
        b = JSON.parse(await readFile(f, "utf8")) as Baseline;
        break;
      } catch {
        // Not there (or not readable): the older name next, then none.
      }
    }
    if (!b) return false;
    if (appliedText === undefined || b.text !== appliedText) {
      this.log.warn(
        appliedText === undefined
          ? "a drift baseline but no committed version (applied.json): drift checks wait for the first committed apply"
          : "drift baseline does not match the applied version; drift checks wait for the next apply",
      );
      return false;
    }
    this.baseline = b;
    return true;
  }

  /** The current baseline (to put back with revert when a commit cannot be recorded). */
  get current(): Baseline | undefined {
    return this.baseline;
  }

  /** Go back to an earlier baseline (memory first; the file is best effort, load() checks it). */
  async revert(b: Baseline | undefined): Promise<void> {
    this.baseline = b;
    try {
      await this.save(b);
    } catch (e) {
      this.log.warn({ err: errorText(e) }, "cannot write the drift baseline back");
    }
  }

  /** `b` on disk under the name for how it was read, the other name removed; none: both removed. */
  private async save(b: Baseline | undefined): Promise<void> {
    if (!this.file) return;
    const keep = b && (b.protocols === "numeric" ? numericFile(this.file) : this.file);
    if (b && keep) await writeFileAtomic(keep, JSON.stringify(b));
    for (const f of [this.file, numericFile(this.file)])
      if (f !== keep) await rm(f, { force: true }).catch(() => undefined); // load() prefers the numeric one
  }

  /**
   * Record what the kernel holds now as the desired state of `text`. Call after a confirmed
   * apply while holding the applier's lock (SafeApplyRequest.onConfirmed), so no drift check
   * runs between the apply and this. `tables`: the compiled model of `text`, when known
   * (saves parsing the text for its kernel-filled sets).
   */
  async setDesired(text: string, tables?: TableDefinition[]): Promise<void> {
    const dynamic = tables ? dynamicSetsOfTables(tables) : dynamicSets(text);
    const how = { dynamic: [...dynamic], protocols: "numeric" as const };
    const normalised = await readAs(this.driver, how);
    const b: Baseline = { text, ...how, normalised };
    // On disk first: a baseline that could not be recorded is not used either.
    await this.save(b);
    this.baseline = b;
  }

  get desiredText(): string | undefined {
    return this.baseline?.text;
  }

  /** Compare now; with restore, re-apply the desired text when it drifted. */
  check(opts: { restore: boolean }): Promise<DriftReport> {
    // Never while an apply waits for its confirmation: that state is not drift.
    // The baseline is read only once the lock is held: the desired state current now, not
    // the one from when the check was asked for.
    return this.applier.exclusive(async () => {
      const b = this.baseline;
      if (!b) return { drifted: false, details: "no desired state yet", restored: false };
      const have = await readAs(this.driver, b);
      const diffs = compare(b.normalised, have);
      if (diffs.length === 0) return { drifted: false, details: "", restored: false };
      const details = diffs.join("; ");
      this.log.warn({ details }, "drift detected");
      // The kernel is not what the last apply left: the next apply must list it, not trust it.
      this.applier.forgetKnownState();
      if (!opts.restore) return { drifted: true, details, restored: false };
      try {
        await this.applier.applyText(b.text);
        const again = compare(b.normalised, await readAs(this.driver, b));
        if (again.length > 0)
          return {
            drifted: true,
            details: `${details}; still differs after restore: ${again.join("; ")}`,
            restored: false,
          };
        this.log.info("drift restored");
        return { drifted: true, details, restored: true };
      } catch (e) {
        this.log.error({ err: errorText(e) }, "drift restore failed");
        return { drifted: true, details: `${details}; restore failed: ${errorText(e)}`, restored: false };
      }
    });
  }
}
