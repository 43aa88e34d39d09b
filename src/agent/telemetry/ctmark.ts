// The conntrack mark of a logged packet, for kernels whose NFLOG carries no conntrack data
// (no CONFIG_NETFILTER_NETLINK_GLUE_CT; and tcpdump never asks for it anyway): look the
// packet's tuple up with `conntrack -G` (conntrack-tools), inside the managed namespace via
// `ip netns exec NS`. conntrack -G finds an entry by its ORIGINAL tuple only (measured:
// a reply packet's own tuple misses, a --reply-src query is refused), so when the
// packet's tuple misses, the swapped tuple (a reply, no NAT) is tried; each process counts
// against the rate cap. ICMP: echo/timestamp/info/mask messages (by type, code, id).
//
// A log flood must not turn into a fork flood, so every lookup is bounded:
//   - argv only (execFile, no shell), a timeout per lookup (SIGKILL after it);
//   - a small LRU cache keyed by the tuple with a short TTL (hits and misses), and one
//     shared in-flight lookup per tuple;
//   - at most `maxPerSecond` processes started per second; beyond it the mark stays
//     unknown (the event is sent without ctmark, which the API stores as NULL) and the
//     skipped lookups are counted and logged (warn, at most every 10 s).

import { execFile } from "node:child_process";
import type { Logger } from "../../runtime/log.ts";
import { swappedTuple, type CtTuple } from "./nflog.ts";

export interface CtMarkOptions {
  netns?: string;
  log: Logger;
  conntrackPath?: string;
  /** Per lookup (default 1000 ms). */
  timeoutMs?: number;
  /** Lookups started per second at most (default 50). */
  maxPerSecond?: number;
  /** Cached tuples (default 1024) and how long a result is kept (default 2000 ms). */
  cacheSize?: number;
  ttlMs?: number;
  /** How skipped lookups are reported at most this often (default 10 000 ms). */
  reportEveryMs?: number;
  /** Test seam: runs argv, resolves stdout (or undefined on failure). */
  run?: (file: string, args: string[], timeoutMs: number) => Promise<string | undefined>;
  now?: () => number;
}

export function conntrackArgs(t: CtTuple): string[] {
  // No -f: conntrack 1.4.7 refuses it with -G ("Illegal option --family"); the family
  // follows from the address form.
  const a = ["-G", "-p", t.protocol, "-s", t.saddr, "-d", t.daddr];
  if (t.icmp)
    a.push("--icmp-type", String(t.icmp.type), "--icmp-code", String(t.icmp.code), "--icmp-id", String(t.icmp.id));
  else if (t.sport !== undefined && t.dport !== undefined)
    a.push("--sport", String(t.sport), "--dport", String(t.dport));
  return a;
}

/** `mark=N` of the first entry conntrack printed (decimal; hex tolerated). */
export function parseCtMark(stdout: string): number | undefined {
  const m = /(?:^|\s)mark=(0x[0-9a-f]+|\d+)(?:\s|$)/i.exec(stdout);
  if (!m) return undefined;
  const v = Number(m[1]);
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : undefined;
}

function defaultRun(file: string, args: string[], timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024, windowsHide: true },
      (err, stdout) => {
        resolve(err ? undefined : stdout);
      },
    );
  });
}

interface Entry {
  value: number | undefined;
  at: number;
}

export class CtMarkLookup {
  private readonly cache = new Map<string, Entry>(); // insertion order = LRU order
  private readonly inflight = new Map<string, Promise<number | undefined>>();
  private windowStart = 0;
  private windowCount = 0;
  private skippedSinceReport = 0;
  private lastReport = 0;
  /** Lookups not started because of the rate cap, since the start. */
  skipped = 0;
  /** Processes started, since the start. */
  started = 0;

  constructor(private readonly o: CtMarkOptions) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** The ct mark, or undefined when it cannot be known (no entry, timeout, over the cap). */
  async lookup(t: CtTuple): Promise<number | undefined> {
    const key = conntrackArgs(t).join(" ");
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && now - hit.at <= (this.o.ttlMs ?? 2000)) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit.value;
    }
    const pending = this.inflight.get(key);
    if (pending) return pending;
    if (!this.takeSlot(now)) return undefined;
    const p = this.runLookup(t).then(async (value) => {
      const swapped = value === undefined ? swappedTuple(t) : undefined;
      if (swapped && this.takeSlot(this.now())) value = await this.runLookup(swapped);
      this.inflight.delete(key);
      this.remember(key, value);
      return value;
    });
    this.inflight.set(key, p);
    this.report(now);
    return p;
  }

  /** One process may start now (rate cap); counts a skip otherwise. */
  private takeSlot(now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (this.windowCount >= (this.o.maxPerSecond ?? 50)) {
      this.skipped++;
      this.skippedSinceReport++;
      this.report(now);
      return false;
    }
    this.windowCount++;
    this.started++;
    return true;
  }

  private async runLookup(t: CtTuple): Promise<number | undefined> {
    const conntrack = this.o.conntrackPath ?? "conntrack";
    const args = conntrackArgs(t);
    const [file, argv] = this.o.netns ? ["ip", ["netns", "exec", this.o.netns, conntrack, ...args]] : [conntrack, args];
    const out = await (this.o.run ?? defaultRun)(file, argv, this.o.timeoutMs ?? 1000);
    return out === undefined ? undefined : parseCtMark(out);
  }

  private remember(key: string, value: number | undefined): void {
    this.cache.delete(key);
    this.cache.set(key, { value, at: this.now() });
    const max = this.o.cacheSize ?? 1024;
    while (this.cache.size > max) this.cache.delete(this.cache.keys().next().value!);
  }

  private report(now: number): void {
    if (this.skippedSinceReport === 0 || now - this.lastReport < (this.o.reportEveryMs ?? 10_000)) return;
    this.flushReport(now);
  }

  /** Log the skipped lookups not reported yet (also called on stop). */
  flushReport(now = this.now()): void {
    if (this.skippedSinceReport === 0) return;
    this.o.log.warn(
      {
        skipped: this.skippedSinceReport,
        skippedTotal: this.skipped,
        maxPerSecond: this.o.maxPerSecond ?? 50,
      },
      "ct mark lookups skipped (rate cap): those log events carry no ctmark",
    );
    this.skippedSinceReport = 0;
    this.lastReport = now;
  }
}
