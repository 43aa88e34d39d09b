// The agent's ban lists (docs/bans.md): kept in their own table, inet palisade_bans,
// whatever ruleset the host runs; the policy's applies, rollbacks and drift checks never
// touch it. A full update (after every Hello) replaces the table in one transaction; a
// change is an incremental element add/delete on the list's timeout sets, never a full
// apply. Each element's timeout is the ban's remaining TTL, less the time the message
// waited here, so the kernel drops it when the API stops listing it.
import { bans, driver as kernel, type DriverOptions } from "../engine/index.ts";
import { Backoff } from "./backoff.ts";
import { errorText } from "./errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { BanUpdate } from "../protocol/agent.ts";

export interface BanApplied {
  full: boolean;
  lists: number;
  added: number;
  removed: number;
  /** Time spent in nft, milliseconds. */
  nftMs: number;
}

export class BanKeeper {
  /** Lists the kernel's ban table has sets for; undefined = no table (or not known yet). */
  private lists: Set<string> | undefined;
  private known = false;
  private chain: Promise<unknown> = Promise.resolve();
  /** Tests and benches: called after each update reached the kernel. */
  onApplied?: (r: BanApplied) => void;
  /**
   * Called a bounded backoff after an update failed: the agent reconnects its stream, and
   * the Hello brings the full state, which replaces the table. Without it a lost change
   * stayed lost until the stream happened to reconnect.
   */
  onResync?: () => void;
  private readonly resyncBackoff = new Backoff({ initialMs: 1_000, maxMs: 300_000 });
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly driver: DriverOptions,
    private readonly log: Logger,
    private readonly failsafe: () => Promise<bans.BanFailsafe>,
  ) {}

  /** Queue an update; updates reach the kernel one at a time, in arrival order. */
  update(m: BanUpdate, receivedAt = performance.now()): Promise<BanApplied | undefined> {
    const run = this.chain.then(() => this.apply(m, receivedAt));
    this.chain = run.catch(() => undefined);
    return run.catch((e) => {
      // The table may be in any state now: the next change reads it again, the next Hello replaces it.
      this.known = false;
      const delayMs = this.resyncBackoff.next();
      this.log.error(
        { err: errorText(e), full: m.full, resyncInMs: delayMs },
        "ban update not applied: the kernel's bans are wrong until the full state is reloaded; asking the API for it",
      );
      if (!this.resyncTimer && this.onResync) {
        this.resyncTimer = setTimeout(() => {
          this.resyncTimer = undefined;
          this.onResync?.();
        }, delayMs);
      }
      return undefined;
    });
  }

  /** For Hello: does the kernel hold the ban table (read again after a failure or a restart)? */
  async held(): Promise<boolean> {
    await this.chain;
    return this.tableExists().catch(() => true);
  }

  /** No resync after this (agent shutdown). */
  stop(): void {
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = undefined;
    this.onResync = undefined;
  }

  /** Resolves when every queued update is done. */
  idle(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  private async apply(m: BanUpdate, receivedAt: number): Promise<BanApplied> {
    const waited = performance.now() - receivedAt;
    const parse = (text: string) => {
      const r = bans.parseBanAddress(text);
      if (!r.ok) throw new Error(`ban address from the API does not parse: ${r.error.message}`);
      return r.value;
    };
    const elements = (l: BanUpdate["lists"][number]) =>
      l.add
        .map((e) => ({ address: parse(e.address), timeoutMs: Number(e.ttlMs) - waited }))
        .filter((e) => e.timeoutMs > 0);
    let text: string;
    let added = 0;
    let removed = 0;
    for (const l of m.lists)
      if (!bans.BAN_LIST_RE.test(l.list)) throw new Error(`ban list name ${JSON.stringify(l.list)} is not valid`);
    if (m.full || !(await this.tableExists())) {
      const all = new Map(m.lists.map((l) => [l.list, elements(l)] as const).filter(([, es]) => es.length > 0));
      // No bans = no table (and no hook): nothing of Palisade's stays in the kernel for them.
      if (all.size === 0) {
        if (!(await this.tableExists())) return { full: m.full, lists: 0, added: 0, removed: 0, nftMs: 0 };
        const r = await kernel.apply(bans.banTableDeleteText(), this.driver);
        this.lists = undefined;
        return { full: m.full, lists: 0, added: 0, removed: 0, nftMs: r.durationMs };
      }
      added = [...all.values()].reduce((n, es) => n + es.length, 0);
      text = bans.banTableText(all, await this.failsafe());
      this.lists = new Set(all.keys());
    } else {
      const parts: string[] = [];
      for (const l of m.lists) {
        const fresh = !this.lists!.has(l.list);
        if (fresh) {
          if (l.add.length === 0) continue; // nothing of it in the kernel to remove
          parts.push(bans.banListCreateText(l.list));
        }
        const add = elements(l);
        // An add whose TTL ran out on the way is a removal (it may be there from before).
        const expired = l.add.filter((e) => Number(e.ttlMs) - waited <= 0).map((e) => parse(e.address));
        const remove = fresh ? [] : [...l.remove.map(parse), ...expired];
        parts.push(bans.banDeltaText(l.list, add, remove, fresh));
        added += add.length;
        removed += remove.length;
      }
      text = parts.join("");
    }
    const r = await kernel.apply(text, this.driver);
    if (!m.full) for (const l of m.lists) if (l.add.length > 0) this.lists!.add(l.list);
    this.known = true;
    if (m.full) this.resyncBackoff.reset();
    const out = { full: m.full, lists: m.lists.length, added, removed, nftMs: r.durationMs };
    this.log.debug({ ...out }, "bans applied");
    this.onApplied?.(out);
    return out;
  }

  private async tableExists(): Promise<boolean> {
    if (this.known) return this.lists !== undefined;
    const t = (await kernel.listTables(this.driver)).some((x) => x.family === "inet" && x.name === bans.BANS_TABLE);
    // After a restart the table may hold lists from before: read their names from the sets.
    this.lists = t ? await this.kernelLists() : undefined;
    this.known = true;
    return t;
  }

  private async kernelLists(): Promise<Set<string>> {
    const st = await kernel.readTable("inet", bans.BANS_TABLE, this.driver);
    return new Set(st.sets.map((s) => s.name.replace(/_[hn][46]$/, "")));
  }
}
