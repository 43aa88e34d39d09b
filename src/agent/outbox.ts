// Results that must reach the API (ApplyResult, DriftReport, QuotaResetResult) go
// through the outbox: each is written to `outbox.json` in the state dir (atomically)
// before it is sent, and stays there until the stream took it. A result produced while
// the stream is down (a rollback after the contact was lost, a failure, a shutdown's
// rollback) is sent right after the next Hello, oldest first, also by a restarted agent.
// A late result is harmless: the API ignores one for a target it already settled
// (src/api/deploy/targets.ts recordResult).
//
// "Sent" means the stream accepted the write; the proto has no ack for results, so a
// result written into a stream that dies in the same moment can still be lost.

import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "./atomic.ts";
import { errorText } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { AgentMessage } from "./proto.ts";

/** The members that are results (never lost); telemetry and heartbeats have their own paths. */
export type ResultMessage = Extract<AgentMessage, { applyResult: unknown } | { drift: unknown } | { quotaReset: unknown }>;

interface Entry {
  id: number;
  msg: ResultMessage;
}

export class Outbox {
  private entries: Entry[] = [];
  private nextId = 1;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly file: string,
    /** Write to the stream; false when there is none (or the write failed). */
    private readonly send: (m: ResultMessage) => boolean,
    private readonly log: Logger,
  ) {}

  static async open(file: string, send: (m: ResultMessage) => boolean, log: Logger): Promise<Outbox> {
    const o = new Outbox(file, send, log);
    try {
      const saved = JSON.parse(await readFile(file, "utf8")) as { entries?: Entry[] };
      if (Array.isArray(saved.entries)) o.entries = saved.entries.filter((e) => typeof e?.id === "number" && e.msg && typeof e.msg === "object");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") log.warn("outbox unreadable; starting empty", { file, error: errorText(e) });
    }
    o.nextId = Math.max(0, ...o.entries.map((e) => e.id)) + 1;
    if (o.entries.length > 0) log.info("unsent results from a previous run", { count: o.entries.length });
    return o;
  }

  /** Results not yet taken by a stream. */
  get size(): number {
    return this.entries.length;
  }

  /** Keep `msg` (durably), then try to send everything queued, in order. */
  post(msg: ResultMessage): Promise<void> {
    return this.serial(async () => {
      this.entries.push({ id: this.nextId++, msg });
      await this.persist();
      await this.flushNow();
    });
  }

  /** Send what is queued (after Hello on a new stream). */
  flush(): Promise<void> {
    return this.serial(() => this.flushNow());
  }

  /** Resolves when every post/flush started so far has finished. */
  idle(): Promise<void> {
    return this.serial(async () => undefined);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch((e) => this.log.error("outbox failed", { error: errorText(e) }));
    return run;
  }

  private async flushNow(): Promise<void> {
    let sent = 0;
    while (this.entries.length > 0 && this.send(this.entries[0]!.msg)) {
      this.entries.shift();
      sent++;
    }
    if (sent > 0) await this.persist();
  }

  private async persist(): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify({ entries: this.entries }));
  }
}
