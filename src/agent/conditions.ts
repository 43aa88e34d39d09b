// Operator conditions (docs/conditions.md): the policy's rules test `meta nfproto
// @condition_NAME`, a set in the policy table that this keeper fills with { ipv4, ipv6 }
// while the API says NAME is on for this host and empties while it is off. A flip is one
// nft transaction of element statements on the sets the kernel has (never a policy apply:
// no rule or handle changes). The value of every name is kept here, so after each kernel
// change of the policy (apply, carry, rollback, drift repair; the applier's afterChange hook)
// the sets are synced again, and a set a new policy version brings gets its value at once.
// A name the API never set is off.
//
// The last full state is kept in the state dir (conditions.json) on every update and read at
// start: until either that file or the API's first full update exists, the keeper knows no
// values and never touches the kernel's sets (a restart while the API is unreachable would
// otherwise turn every condition off at the first rollback or drift repair).
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { writeFileAtomic } from "./atomic.ts";
import { conditions, driver as kernel, type DriverOptions } from "../engine/index.ts";
import { errorText } from "./errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { ConditionUpdate } from "../protocol/agent.ts";

const FAMILY = "inet";
const TABLE = "palisade";

export interface ConditionsApplied {
  full: boolean;
  /** Condition sets the transaction changed. */
  sets: number;
  /** Time spent in nft (listing + transaction), milliseconds. */
  nftMs: number;
}

/** conditions.json: the names that were on at the last update (the others were off). */
const Saved = z.object({ on: z.array(z.string().regex(conditions.CONDITION_NAME_RE)) });

export class ConditionKeeper {
  private readonly on = new Set<string>();
  /** Values are known (loaded from the state file or a full update arrived): only then may sets be flushed. */
  private known = false;
  /** Writes of the state file, in update order. */
  private saving: Promise<void> = Promise.resolve();
  /** The policy table's condition sets at the last full sync; undefined = read them first. */
  private sets: string[] | undefined;
  /** Tests and benches: called after each update reached the kernel. */
  onApplied?: (r: ConditionsApplied) => void;

  constructor(
    private readonly driver: DriverOptions,
    /** The applier's lock: a flip never runs in the middle of an apply or rollback. */
    private readonly exclusive: <T>(fn: () => Promise<T>) => Promise<T>,
    private readonly log: Logger,
    /** Where the last full state is kept (undefined: not kept, tests). */
    private readonly file?: string,
  ) {}

  /** Read the state the last run kept (before any kernel change of the policy at start). */
  async load(): Promise<boolean> {
    if (!this.file) return false;
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        this.log.error(
          { err: errorText(e), file: this.file },
          "condition state not read; sets untouched until the API's",
        );
      return false;
    }
    let saved: z.infer<typeof Saved>;
    try {
      saved = Saved.parse(JSON.parse(text));
    } catch (e) {
      this.log.error(
        { err: errorText(e), file: this.file },
        "condition state is corrupt; sets untouched until the API's",
      );
      return false;
    }
    // The API's full update may already have come: it is newer than the file.
    if (this.known) return true;
    for (const n of saved.on) this.on.add(n);
    this.known = true;
    return true;
  }

  /** The names that are on now. */
  values(): string[] {
    return [...this.on].sort();
  }

  /** Record the API's values at once, then bring the kernel's sets in line (under the applier's lock). */
  update(m: ConditionUpdate): Promise<ConditionsApplied | undefined> {
    const bad = m.values.filter((v) => !conditions.CONDITION_NAME_RE.test(v.name));
    for (const v of bad) this.log.error({ name: v.name }, "condition name from the API is not valid; ignored");
    const values = m.values.filter((v) => conditions.CONDITION_NAME_RE.test(v.name));
    if (m.full) this.on.clear();
    for (const v of values) {
      if (v.on) this.on.add(v.name);
      else this.on.delete(v.name);
    }
    if (m.full) this.known = true;
    if (this.known) this.save();
    const only = m.full ? undefined : new Set(values.map((v) => v.name));
    return this.exclusive(() => this.sync(m.full, only)).catch((e) => {
      // The values are kept: the next kernel change of the policy or the next Hello syncs again.
      this.log.error({ err: errorText(e), full: m.full }, "condition update not applied to the kernel");
      return undefined;
    });
  }

  /** After a kernel change of the policy (called inside the applier's lock): every condition set again. */
  async resync(): Promise<void> {
    // No values yet (fresh state dir, API not reached): the kernel's sets are the best guess.
    if (!this.known) return;
    await this.sync(true).catch((e) =>
      this.log.error({ err: errorText(e) }, "condition sets not synced after a kernel change"),
    );
  }

  /** Tests: the state file's writes so far are done. */
  saved(): Promise<void> {
    return this.saving;
  }

  private save(): void {
    if (!this.file) return;
    const file = this.file;
    const data = JSON.stringify({ on: this.values() });
    this.saving = this.saving
      .then(() => writeFileAtomic(file, data, 0o600))
      .catch((e) => this.log.error({ err: errorText(e), file }, "condition state not kept in the state dir"));
  }

  private async sync(full: boolean, only?: Set<string>): Promise<ConditionsApplied> {
    const t0 = performance.now();
    // A flip uses the set names read at the last full sync (one nft run instead of two); a
    // full sync, and a flip the kernel refuses (the table changed behind the agent), read them again.
    const cached = !full && this.sets !== undefined;
    let sets = cached ? this.sets! : await this.readSets();
    const pick = (all: string[]) => all.filter((n) => !only || only.has(conditions.conditionOfSet(n)!));
    try {
      const text = conditions.conditionSyncText(FAMILY, TABLE, pick(sets), this.on);
      if (text) await kernel.apply(text, this.driver);
    } catch (e) {
      if (!cached) throw e;
      sets = await this.readSets();
      const text = conditions.conditionSyncText(FAMILY, TABLE, pick(sets), this.on);
      if (text) await kernel.apply(text, this.driver);
    }
    const out = { full, sets: pick(sets).length, nftMs: performance.now() - t0 };
    this.log.debug({ ...out, on: this.values() }, "conditions applied");
    this.onApplied?.(out);
    return out;
  }

  /** The policy table's condition sets, as the kernel has them now (remembered for the next flip). */
  private async readSets(): Promise<string[]> {
    this.sets = undefined;
    const sets = (await kernel.listSetNames(FAMILY, this.driver))
      .filter((s) => s.table === TABLE && conditions.conditionOfSet(s.name) !== undefined)
      .map((s) => s.name);
    this.sets = sets;
    return sets;
  }
}
