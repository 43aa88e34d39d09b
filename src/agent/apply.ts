// The safe apply: snapshot, apply atomically, then commit-confirmed.
//
//   1. Snapshot Palisade's tables as nft text (driver.snapshot) and hand it to the caller
//      (`beforeApply`), which writes it to the state dir as the pending apply: a crash while
//      waiting for the Confirm must leave the way back on disk. Cannot write it (disk full)
//      = nothing is applied (`state_error`).
//   2. Tell telemetry to take its final reading of the old objects (hooks.beforeChange).
//   3. Apply in one transaction, keeping stateful objects (kernel/plan.ts, planned on the
//      object names the snapshot listed: no second read of the kernel). The kernel commits
//      all of it or nothing, so it is its own check: there is no `nft -c` before it. Only
//      when it refuses does `nft -c` of the desired text (driver.check) say whose fault it
//      is: refused too = `check_failed` with the kernel's message on the text as sent, the
//      kernel unchanged (as a failed check before the apply would have left it); accepted =
//      only the incremental form was refused, so replace the tables with the kernel's
//      values carried into the compiled definitions (the engine's nft.carryReplace).
//   4. Wait for the API's Confirm (caller's `confirmed(timeoutMs)`). None in time: put
//      the snapshot's rules back by ourselves (same incremental path, so counters keep
//      running and are not rewound; a snapshot is nft text with no compiled tables, so
//      when the incremental form is refused the driver's verbatim restore puts it back
//      and counters rewind to the snapshot) and report `rolled_back`. No Palisade tables
//      before = no Palisade tables after. A Confirm that cannot be recorded (`onConfirmed`
//      throws, e.g. the disk is full) is rolled back too: never run what is not on disk.
// One apply runs at a time; a second caller waits its turn. Drift checks take the same
// lock (drift.ts), and the confirmed state is recorded before the lock is released.
//
// Known state: after a confirmed apply the applier remembers what it made the kernel hold
// (the text and its compiled tables). The next apply takes its snapshot and the plan's
// object names from that instead of listing the kernel: with 10k rules the listing was
// most of an apply's CPU (nft prints every rule, ~140-300 ms here, while the apply itself
// is one `nft -f` like the raw load). What this changes: the rollback target is the last
// confirmed text, so a hand edit of a Palisade table made since then is not put back by a
// rollback (a drift check that finds drift forgets the known state, and the next apply
// lists the kernel again). The known state is not used when the new text deletes a set,
// map, counter or quota, or changes the definition of one that stays (a base chain's hook
// or priority, a set's type, flags or timeout: the kernel refuses those in place, so the
// apply and its rollback would replace the table), because a rollback must give them back
// with the values they had (only a listing has them); objects that stay keep their values
// on the incremental rollback. Should the kernel still refuse that rollback, the live values
// are carried into the known tables rather than the text restored verbatim. Anything else
// that changes the tables through the applier (drift repair, rollback, restore, a failed
// apply) forgets it first.

import {
  isNftError,
  nft,
  type Driver,
  type KernelObjects,
  type Snapshot,
  type TableDefinition,
} from "../engine/index.ts";
import { AgentError, errorText } from "./errors.ts";
import type { Logger } from "../runtime/log.ts";
import { readPalisade } from "./kernel/read.ts";
import { declaredByTables, incrementalPlan, type PlanMode } from "./kernel/plan.ts";
import { tableKey } from "./kernel/statements.ts";

export type ApplyStatus = "applied" | "failed" | "rolled_back";

export interface ApplyOutcome {
  status: ApplyStatus;
  /** Stable code when not applied: check_failed, apply_failed, rollback_failed, confirm_timeout, state_error, agent_stopping. */
  code?: string;
  /** Operator-facing text (the kernel's message for nft refusals). */
  error?: string;
  mode?: PlanMode;
}

export interface ApplyHooks {
  /** Runs just before every kernel change (apply, rollback, drift repair): telemetry's final read. */
  beforeChange?: () => Promise<void>;
  /**
   * Runs after every kernel change. "rewound" = counters went back to a snapshot's
   * values (last-resort verbatim restore): telemetry must rebase, not count a reset.
   * "restored" = an incremental rollback to a listing's snapshot: objects the rolled-back
   * version had removed are back with the values they had, which telemetry shipped before
   * they were removed; it must take those as its base, not ship them again.
   */
  afterChange?: (how: PlanMode | "rewound" | "restored") => Promise<void>;
}

export interface SafeApplyRequest {
  text: string;
  /**
   * The engine's compiled tables of `text` (compileNft), what a carry rebuilds when the
   * kernel refuses the incremental form. Without them such a change fails (`apply_failed`).
   */
  tables?: TableDefinition[];
  confirmTimeoutMs: number;
  /** Resolves true when the API's Confirm arrived within timeoutMs, false otherwise. */
  confirmed: (timeoutMs: number) => Promise<boolean>;
  /**
   * Runs after the snapshot, before the kernel changes: record it durably (pending.json).
   * Throwing aborts the apply with `state_error`; the kernel stays untouched.
   */
  beforeApply?: (snap: Snapshot) => Promise<void>;
  /** Called once the kernel holds the new rules (before confirmation). */
  onApplied?: () => void;
  /**
   * Runs after the confirmation, still inside the lock: record the new desired state
   * (drift baseline) before any queued drift check can compare against the old one.
   * Throwing (nothing recorded) rolls the apply back with `state_error`.
   */
  onConfirmed?: () => Promise<void>;
  /**
   * Runs inside the lock for every outcome but "applied" once beforeApply succeeded
   * (apply refused, rolled back, rollback failed): report it and drop the pending record
   * before another apply can write a new one.
   */
  onNotApplied?: (out: ApplyOutcome) => Promise<void>;
}

/**
 * nft killed by its timeout, or failing in a way no code describes: the kernel may have
 * committed the batch (it runs inside nft's sendmsg; nft then waits for the acks), so
 * nothing can be assumed unchanged. Every other driver error is a refusal of the whole.
 */
function outcomeUnknown(e: unknown): boolean {
  return isNftError(e) && (e.code === "nft_timeout" || e.code === "nft_failed");
}

/** `nft -c` refused the desired text itself (thrown by applyText with `checkOnRefusal`). */
class CheckRefused extends Error {
  constructor(readonly refusal: unknown) {
    super("the kernel refused the desired text");
  }
}

export interface ApplyTextOptions {
  /** The kernel's object names, when just listed (a snapshot's): saves reading them again. */
  kernel?: KernelObjects;
  /** When the kernel refuses the incremental form, `nft -c` the text before any carry. */
  checkOnRefusal?: boolean;
  /** The text holds values (a listing's snapshot): an incremental apply is "restored". */
  restoresValues?: boolean;
}

function kernelText(e: unknown): string {
  if (isNftError(e)) return e.kernelMessage ? `${e.message} [kernel: ${e.kernelMessage}]` : e.message;
  return errorText(e);
}

/**
 * The kernel's Palisade tables as `text` declares them, in a Snapshot's form: the text
 * reads back (incrementally, or through the driver's verbatim restore) to the same tables.
 */
export function snapshotOfText(text: string, tables: TableDefinition[]): Snapshot {
  const objects: KernelObjects = { tables: [], chains: [], sets: [], counters: [], quotas: [], ctHelpers: [] };
  for (const d of tables) {
    const t = { family: d.table.family, table: d.table.name };
    objects.tables.push({
      family: t.family,
      name: t.table,
      ...(d.table.comment !== undefined ? { comment: d.table.comment } : {}),
    });
    for (const c of d.chains) objects.chains.push({ ...t, name: c.name });
    for (const s of d.sets ?? []) objects.sets.push({ ...t, name: s.name, kind: s.kind });
    for (const c of d.counters ?? []) objects.counters.push({ ...t, name: c.name });
    for (const q of d.quotas ?? []) objects.quotas.push({ ...t, name: q.name });
    for (const h of d.table.ctHelpers ?? [])
      objects.ctHelpers.push({ ...t, name: h.name, type: h.type, protocol: h.protocol, l3proto: "inet" });
  }
  const key = (a: { family: string; name: string }) => `${a.family} ${a.name}`;
  objects.tables.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return { tables: objects.tables, text, takenAt: new Date().toISOString(), objects };
}

/** JSON of an object's definition without its values (elements, counts, usage), bigints as text. */
const shapeOf = (o: object, drop: readonly string[]) =>
  JSON.stringify(Object.fromEntries(Object.entries(o).filter(([k]) => !drop.includes(k))), (_k, v: unknown) =>
    typeof v === "bigint" ? v.toString() : v,
  );

/**
 * True when every chain, set, map, counter and quota that `from` and `to` both declare has
 * the same definition in both (values aside). Then the apply and its rollback are both
 * incremental-compatible for the objects that stay: the kernel refuses an in-place change of
 * a base chain's hook or priority or of a set's type, flags or timeout, and the fallback
 * (carry or a verbatim restore) needs the kernel's live values, which only a listing has.
 * A base chain's policy and any comment are left out: the kernel takes a new policy in place
 * and ignores a new comment in place (both measured on 6.18 / nft 1.0.6), so neither makes
 * the incremental form fail, and a policy change (e.g. 10k rules with policy accept -> a
 * small ruleset with policy drop) would otherwise cost a listing of every rule.
 */
export function sameShapes(from: TableDefinition[], to: TableDefinition[]): boolean {
  const index = (defs: TableDefinition[]) => {
    const m = new Map<string, string>();
    for (const d of defs) {
      const t = tableKey(d.table.family, d.table.name);
      for (const c of d.chains) m.set(`${t} chain ${c.name}`, shapeOf(c, ["policy", "comment"]));
      for (const x of d.sets ?? []) m.set(`${t} ${x.kind} ${x.name}`, shapeOf(x, ["elements", "comment"]));
      for (const c of d.counters ?? []) m.set(`${t} counter ${c.name}`, shapeOf(c, ["packets", "bytes", "comment"]));
      for (const q of d.quotas ?? []) m.set(`${t} quota ${q.name}`, shapeOf(q, ["used", "comment"]));
    }
    return m;
  };
  const a = index(from);
  for (const [k, v] of index(to)) if (a.has(k) && a.get(k) !== v) return false;
  return true;
}

/** True when going from `from` to `tables` deletes no set, map, counter or quota (whose values only a listing has). */
export function keepsStatefulObjects(from: KernelObjects, tables: TableDefinition[]): boolean {
  const want = declaredByTables(tables);
  const kept = (o: { family: string; table: string }, what: string) =>
    want.get(tableKey(o.family, o.table))?.objects.has(what) === true;
  return (
    from.sets.every((s) => kept(s, `${s.kind} ${s.name}`)) &&
    from.counters.every((c) => kept(c, `counter ${c.name}`)) &&
    from.quotas.every((q) => kept(q, `quota ${q.name}`))
  );
}

export class Applier {
  private queue: Promise<unknown> = Promise.resolve();
  private held = 0;
  /** What the last confirmed apply made the kernel hold (see "Known state" above). */
  private known: { snap: Snapshot; tables: TableDefinition[] } | undefined;

  constructor(
    /** The kernel: nftDriver() in production, an in-memory fake in unit tests. */
    readonly driver: Driver,
    private readonly log: Logger,
    /** Settable after construction: the collector is built after the applier. */
    public hooks: ApplyHooks = {},
  ) {}

  /** Serialise kernel changes: applies, rollbacks and drift repairs never interleave. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.held++;
    const run = this.queue.then(fn, fn);
    this.queue = run.then(
      () => void this.held--,
      () => void this.held--,
    );
    return run;
  }

  /**
   * Something holds or waits for the lock: the kernel may be changing. Telemetry's interval
   * readings wait (they are skipped): one between a carry's read of the values and its
   * commit, or between a rollback and the collector's rebase, would ship values twice.
   */
  get busy(): boolean {
    return this.held > 0;
  }

  /**
   * Make Palisade's tables equal `text` in one transaction, keeping counter, quota and
   * set state. `tables` (the compiled model of `text`) allow the carry fallback. Throws
   * NftError when the kernel refuses the incremental plan and there is no carry, or both.
   */
  async applyText(text: string, tables?: TableDefinition[], opts: ApplyTextOptions = {}): Promise<PlanMode> {
    this.known = undefined;
    return this.applyTextNow(text, tables, opts);
  }

  /** The kernel may differ from the last confirmed apply (drift found): the next apply lists it. */
  forgetKnownState(): void {
    this.known = undefined;
  }

  private async applyTextNow(text: string, tables?: TableDefinition[], opts: ApplyTextOptions = {}): Promise<PlanMode> {
    // The plan needs the objects' names (and ct helpers' types), never an element: the
    // listing without elements costs nothing per element (an accounting set may hold 65k).
    const kernel = opts.kernel ?? (await this.driver.readWithoutElements());
    const inc = incrementalPlan(text, kernel, tables);
    await this.hooks.beforeChange?.();
    try {
      await this.driver.apply(inc);
      await this.hooks.afterChange?.(opts.restoresValues ? "restored" : "incremental");
      return "incremental";
    } catch (e) {
      if (outcomeUnknown(e)) throw e; // not a refusal: the caller puts the way back
      // Refused as a whole: nothing changed. A text the kernel refuses on its own is not carried.
      if (opts.checkOnRefusal) {
        await this.driver.check(text).catch((c: unknown) => {
          throw new CheckRefused(c);
        });
      }
      if (!tables) throw e;
      this.log.warn(
        { err: kernelText(e) },
        "incremental apply refused; replacing tables with carried counters (packets between the read and the commit are not counted)",
      );
    }
    // Telemetry's final reading first, then the values to carry, as fresh as possible: read
    // the other way round, the new tables would start below telemetry's last reading, and
    // the collector takes a value that went down for a reset (it ships the whole value again).
    await this.hooks.beforeChange?.();
    const fresh = await readPalisade(this.driver);
    await this.driver.apply(nft.serialize(nft.carryReplace(tables, fresh)));
    await this.hooks.afterChange?.("carry");
    return "carry";
  }

  /** Snapshot, apply (the atomic `nft -f` is the check), and hold the commit until confirmed (or roll back). */
  safeApply(req: SafeApplyRequest): Promise<ApplyOutcome> {
    return this.exclusive(() => this.safeApplyNow(req));
  }

  private closing = false;

  /**
   * The agent is shutting down: an apply that gets the lock from now on is refused with the
   * kernel untouched. Queued behind one in its confirm window, it would otherwise apply and
   * wait a whole window of its own (past systemd's stop timeout, killed mid-way).
   */
  close(): void {
    this.closing = true;
  }

  private async safeApplyNow(req: SafeApplyRequest): Promise<ApplyOutcome> {
    if (this.closing)
      return {
        status: "failed",
        code: "agent_stopping",
        error: "the agent is shutting down; nothing applied (deploy again once the host's agent is back)",
      };
    const known = this.known;
    this.known = undefined;
    const useKnown =
      known?.snap.objects &&
      req.tables &&
      keepsStatefulObjects(known.snap.objects, req.tables) &&
      sameShapes(known.tables, req.tables);
    const snap = useKnown ? known.snap : await this.driver.snapshot();
    // A known-state snapshot has no live values: a rollback that cannot be incremental
    // carries them from the kernel into these tables instead of restoring the text verbatim.
    const snapTables = useKnown ? known.tables : undefined;
    try {
      await req.beforeApply?.(snap);
    } catch (e) {
      this.log.error({ err: errorText(e) }, "cannot record the pending apply; nothing applied");
      return {
        status: "failed",
        code: "state_error",
        error: `cannot record the pending apply in the state dir, nothing applied: ${errorText(e)}`,
      };
    }
    let mode: PlanMode;
    try {
      mode = await this.applyTextNow(req.text, req.tables, { kernel: snap.objects, checkOnRefusal: true });
    } catch (e) {
      if (e instanceof CheckRefused) {
        // The kernel refused the apply as a whole; the check only says whose fault it is
        // (a check that timed out says nothing: reported as the apply's failure).
        const code = outcomeUnknown(e.refusal) ? "apply_failed" : "check_failed";
        this.log.warn({ err: kernelText(e.refusal) }, "ruleset refused; kernel unchanged");
        return this.notApplied(req, { status: "failed", code, error: kernelText(e.refusal) });
      }
      if (!outcomeUnknown(e))
        return this.notApplied(req, { status: "failed", code: "apply_failed", error: kernelText(e) });
      // The new version may be in the kernel, unconfirmed: put the snapshot back.
      this.log.warn({ err: kernelText(e) }, "apply outcome unknown; restoring the previous ruleset");
      return this.undo(
        req,
        { snap, tables: snapTables },
        {
          status: "failed",
          code: "apply_failed",
          error: `${kernelText(e)}; the previous ruleset was restored in case the kernel had taken the new one`,
        },
        (r) => `${kernelText(e)}; the previous ruleset could not be restored either: ${r}`,
      );
    }
    this.log.info(
      { mode, confirmTimeoutMs: req.confirmTimeoutMs, tables: snap.tables.length },
      "ruleset applied; waiting for confirmation",
    );
    req.onApplied?.();
    let why: { code: string; error: string };
    if (await req.confirmed(req.confirmTimeoutMs)) {
      try {
        await req.onConfirmed?.();
        if (req.tables) this.known = { snap: snapshotOfText(req.text, req.tables), tables: req.tables };
        this.log.info({ mode }, "apply confirmed");
        return { status: "applied", mode };
      } catch (e) {
        this.log.error({ err: errorText(e) }, "cannot record the confirmed apply; restoring the previous ruleset");
        why = {
          code: "state_error",
          error: `cannot record the confirmed apply in the state dir (${errorText(e)}); previous ruleset restored`,
        };
      }
    } else {
      this.log.warn(
        { confirmTimeoutMs: req.confirmTimeoutMs },
        "no confirmation within the timeout; restoring the previous ruleset",
      );
      why = {
        code: "confirm_timeout",
        error: `no confirmation within ${Math.round(req.confirmTimeoutMs / 1000)} s; previous ruleset restored`,
      };
    }
    return this.undo(
      req,
      { snap, tables: snapTables },
      { status: "rolled_back", ...why, mode },
      (r) => `rollback failed: ${r}`,
    );
  }

  /** Put the snapshot back and report `outcome`; a rollback that fails is reported as that instead. */
  private async undo(
    req: SafeApplyRequest,
    back: { snap: Snapshot; tables?: TableDefinition[] },
    outcome: ApplyOutcome,
    rollbackFailed: (kernelError: string) => string,
  ): Promise<ApplyOutcome> {
    try {
      await this.rollback(back.snap, back.tables);
    } catch (r) {
      this.log.error({ err: kernelText(r) }, "rollback failed");
      return this.notApplied(req, {
        status: "failed",
        code: "rollback_failed",
        error: rollbackFailed(kernelText(r)),
        ...(outcome.mode ? { mode: outcome.mode } : {}),
      });
    }
    return this.notApplied(req, outcome);
  }

  private async notApplied(req: SafeApplyRequest, out: ApplyOutcome): Promise<ApplyOutcome> {
    await req.onNotApplied?.(out).catch((e) => this.log.error({ err: errorText(e) }, "cannot record the outcome"));
    return out;
  }

  /** Put a snapshot's tables back (a restarted agent undoing an unconfirmed apply), under the lock. */
  restoreSnapshot(snap: Snapshot): Promise<void> {
    return this.exclusive(() => this.rollback(snap));
  }

  private async rollback(snap: Snapshot, tables?: TableDefinition[]): Promise<void> {
    this.known = undefined;
    try {
      // With `tables` (a snapshot made from the known state, not a listing), a refused
      // incremental rollback carries the kernel's live counters, quota usage and set
      // elements into them; a listing's snapshot already holds its values.
      await this.applyTextNow(snap.text, tables, { restoresValues: !tables });
    } catch (e) {
      // Last resort: the driver's exact restore (deletes and reloads; counters rewind to the snapshot).
      this.log.warn({ err: kernelText(e) }, "incremental rollback refused; restoring the snapshot verbatim");
      await this.hooks.beforeChange?.();
      await this.driver.restore(snap);
      await this.hooks.afterChange?.("rewound");
    }
  }
}

export { AgentError };
