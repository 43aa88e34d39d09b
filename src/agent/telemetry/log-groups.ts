// Which NFLOG groups the agent reads: exactly the groups its Palisade tables log to, read
// back from the kernel (`nft list table`) at start and after every kernel change (apply,
// rollback, drift repair), so a ruleset's `log`/LOGMARK rules reach /v1/logs with no
// flag to guess, and a group the ruleset stopped using is released (only one listener
// can bind an NFLOG group; a foreign table's groups, e.g. ulogd's, are never taken).
// One LogReader (one tcpdump) per group; a group whose reader cannot start or exits is
// reported as unavailable (Hello capabilities) and retried on the next sync.

import { driver as kernel, nft, type DriverOptions } from "../../engine/index.ts";
import { errorText } from "../errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { LogEvent, Unavailable } from "../../protocol/agent.ts";
import { LogReader } from "./logs.ts";
import type { NflogPacket } from "./nflog.ts";

export interface LogGroupsOptions {
  driver: DriverOptions;
  log: Logger;
  onEvents: (events: LogEvent[]) => void;
  /** Every decoded NFLOG packet, payload included (spaKnock knocks reach the verifier here). */
  onPacket?: (p: NflogPacket) => void;
  /** Absolute path of tcpdump; undefined = not installed (groups are reported, not read). */
  tcpdumpPath: string | undefined;
  /** setpriv installed: each tcpdump dies with the agent (logs.ts). */
  setprivPath?: string | undefined;
  /** conntrack installed: ct marks are looked up by tuple. */
  conntrackPath: string | undefined;
}

export class LogGroups {
  private readonly readers = new Map<number, LogReader>();
  private wanted: number[] = [];
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: LogGroupsOptions) {}

  /** The groups the applied ruleset logs to (read or not). */
  groups(): number[] {
    return [...this.wanted];
  }

  /** Read exactly the groups the kernel's Palisade tables log to now. */
  syncFromKernel(): Promise<void> {
    return this.serial(async () => {
      const text = (await kernel.snapshot(this.o.driver)).text;
      await this.syncNow(nft.nflogGroups(text));
    });
  }

  /** Read exactly `groups`: start the new ones (and failed ones again), stop the rest. */
  sync(groups: number[]): Promise<void> {
    return this.serial(() => this.syncNow(groups));
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.queue
      .then(fn)
      .catch((e) => this.o.log.error({ err: errorText(e) }, "NFLOG groups not updated: log events may be lost"));
    this.queue = run;
    return run;
  }

  private async syncNow(groups: number[]): Promise<void> {
    if (this.stopped) return;
    const want = [...new Set(groups)].sort((a, b) => a - b);
    this.wanted = want;
    for (const [g, r] of [...this.readers]) {
      if (want.includes(g) && r.failures.size === 0) continue;
      this.readers.delete(g);
      await r.stop();
    }
    if (!this.o.tcpdumpPath) {
      if (want.length > 0) this.o.log.error({ groups: want }, "log events unavailable: tcpdump not installed");
      return;
    }
    const start = want.filter((g) => !this.readers.has(g));
    await Promise.all(
      start.map(async (g) => {
        const r = new LogReader({
          groups: [g],
          ...(this.o.driver.netns ? { netns: this.o.driver.netns } : {}),
          log: this.o.log,
          onEvents: this.o.onEvents,
          ...(this.o.onPacket ? { onPacket: this.o.onPacket } : {}),
          tcpdumpPath: this.o.tcpdumpPath,
          ...(this.o.setprivPath ? { setprivPath: this.o.setprivPath } : {}),
          ctmarkLookup: this.o.conntrackPath !== undefined,
          ...(this.o.conntrackPath ? { ctmark: { conntrackPath: this.o.conntrackPath } } : {}),
        });
        this.readers.set(g, r);
        await r.start();
      }),
    );
    if (start.length > 0) this.o.log.info({ groups: want }, "reading NFLOG groups");
  }

  /** Resolves when every sync asked for so far is done (its readers listening or failed). */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Groups whose reader could not start or exited, with tcpdump's own message. */
  unavailable(): Unavailable[] {
    const out: Unavailable[] = [];
    for (const [g, r] of this.readers) {
      const why = r.failures.get(g);
      if (why) out.push({ program: "tcpdump", reason: `log events of NFLOG group ${g} unavailable: ${why}` });
    }
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue;
    await Promise.all([...this.readers.values()].map((r) => r.stop()));
    this.readers.clear();
  }
}
