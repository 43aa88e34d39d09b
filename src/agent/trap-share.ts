// Shared trap hits (docs/dynamic-sets.md): when the applied policy's port-scan trap has
// `share`, every source it bans is reported to the API, which bans it fleet-wide. The
// trap's probe rule logs each new ban to the NFLOG group the agent already reads (a
// banned source is dropped by the ban check before it can log again), so a log event with
// the trap's prefix and a trap port is a new trap ban. Bounded: an address reported in the
// last `dedupeMs` is not reported again, at most `perSecond` addresses (burst `burst`) leave
// the host, the rest are dropped and counted (the kernel's own ban still holds), and at
// most `maxPending` wait for the next send.
import type { TrapShare } from "../engine/index.ts";
import type { LogEvent } from "../protocol/agent.ts";
import type { Logger } from "../runtime/log.ts";
import { errorText } from "./errors.ts";
import { READ_RETRY, RetriedRead, type ReadRetry } from "./retried-read.ts";

export interface TrapShareLimits {
  perSecond: number;
  burst: number;
  dedupeMs: number;
  maxRecent: number;
  maxPending: number;
  flushMs: number;
}

export const TRAP_SHARE_LIMITS: TrapShareLimits = {
  perSecond: 50,
  burst: 200,
  dedupeMs: 60_000,
  maxRecent: 10_000,
  maxPending: 1_000,
  flushMs: 20,
};

export class TrapShareReporter {
  private share: TrapShare | undefined;
  private readonly recent = new Map<string, number>();
  private readonly pending = new Set<string>();
  private tokens: number;
  private refilledAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  /** Addresses not reported because of the rate cap or a full queue. */
  dropped = 0;
  /** Reads of the policy's trap sharing: kept on failure and retried; a newer read supersedes a retry. */
  private readonly reads: RetriedRead<TrapShare | undefined>;

  constructor(
    /** Sends one report; false when the stream is down (the addresses are dropped, the kernel keeps its ban). */
    private readonly send: (addresses: string[]) => boolean,
    private readonly log: Logger,
    private readonly limits: TrapShareLimits = TRAP_SHARE_LIMITS,
    retry: ReadRetry = READ_RETRY,
  ) {
    this.tokens = limits.burst;
    this.reads = new RetriedRead<TrapShare | undefined>(
      {
        use: (share, attempt) => {
          this.configure(share);
          if (attempt > 1) this.log.info({ attempt }, "trap sharing of the policy read");
        },
        failed: (e, attempt, retryInMs) =>
          this.log.error(
            { err: errorText(e), attempt, retryInMs, keptShare: this.share ?? null },
            "cannot read the policy's trap sharing; the sharing held so far stays and it is tried again. If it " +
              "goes on, look for render worker errors above (out of memory: raise the host's memory; an invalid " +
              "applied.json: send the policy again) or restart the agent",
          ),
      },
      retry,
    );
  }

  /**
   * The trap sharing of the policy from `read` (at start: the applied one; then each confirmed
   * one). When it fails the sharing held stays and it is tried again with backoff (retried-read.ts);
   * resolves after the first try, true if it read it.
   */
  refresh(read: () => Promise<TrapShare | undefined>): Promise<boolean> {
    return this.reads.read(read);
  }

  /** The confirmed policy's trap sharing (render.ts `policyFacts`); undefined = none. */
  configure(share: TrapShare | undefined): void {
    if (JSON.stringify(share) !== JSON.stringify(this.share))
      this.log.info({ share: share ?? null }, share ? "sharing port-scan trap hits" : "not sharing trap hits");
    this.share = share;
  }

  get sharing(): TrapShare | undefined {
    return this.share;
  }

  /** Log events as the NFLOG readers deliver them. */
  onEvents(events: LogEvent[]): void {
    const s = this.share;
    if (!s) return;
    const now = Date.now();
    for (const e of events) {
      if (e.prefix !== s.logPrefix || e.protocol !== "tcp" || !s.ports.includes(e.dport) || !e.saddr) continue;
      const at = this.recent.get(e.saddr);
      if (at !== undefined && now - at < this.limits.dedupeMs) continue;
      if (!this.take(now) || this.pending.size >= this.limits.maxPending) {
        this.dropped++;
        continue;
      }
      this.remember(e.saddr, now);
      this.pending.add(e.saddr);
    }
    if (this.pending.size > 0 && !this.timer) this.timer = setTimeout(() => this.flush(), this.limits.flushMs);
  }

  stop(): void {
    this.reads.cancel();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flush(): void {
    this.timer = undefined;
    const addrs = [...this.pending];
    this.pending.clear();
    if (addrs.length === 0) return;
    if (!this.send(addrs)) {
      this.dropped += addrs.length;
      this.log.warn({ addresses: addrs.length }, "trap hits not shared: no stream to the API");
    }
  }

  private take(now: number): boolean {
    const l = this.limits;
    this.tokens = Math.min(l.burst, this.tokens + ((now - this.refilledAt) / 1000) * l.perSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  private remember(addr: string, now: number): void {
    this.recent.delete(addr);
    this.recent.set(addr, now);
    // Oldest first (insertion order): the map never holds more than maxRecent.
    while (this.recent.size > this.limits.maxRecent) this.recent.delete(this.recent.keys().next().value!);
  }
}
