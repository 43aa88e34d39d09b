// Results that must reach the API (ApplyResult, DriftReport, QuotaResetResult) go
// through the outbox: each gets a unique `resultId` (a UUID) and is written to
// `outbox.json` in the state dir (atomically) before it is sent, and stays there until the
// API's ResultAck names it. The API acks only after it processed the result (its
// transaction committed, or it ignored the result as stale or already seen), so a result
// written into a stream that dies in that same moment is not lost: whatever is unacked when
// a stream ends is sent again right after the next Hello, oldest first, with the same id —
// also by a restarted agent. Resending is harmless: the API's processing is idempotent
// (src/api/grpc/session.ts), and a result it has already settled is only acked again.
//
// While one stream lives, each entry is written to it once (in order); acks arrive in the
// same order, but an entry is dropped only by its own ack.
//
// A state dir that cannot be written (disk full) never loses a result that can still be
// sent and never rejects: the entry stays in memory, is sent anyway, and the failure is
// logged (it is only lost if the agent also dies before the ack).

import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "./atomic.ts";
import { errorText } from "./errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { AgentMessage, ApplyResult, DriftReport, QuotaResetResult } from "../protocol/agent.ts";

/** A result as posted: the outbox stamps its resultId. */
type Unstamped<T extends { resultId: string }> = Omit<T, "resultId"> & { resultId?: string };

/** The members that are results (never lost); telemetry and heartbeats have their own paths. */
export type ResultMessage =
  | { applyResult: Unstamped<ApplyResult> }
  | { drift: Unstamped<DriftReport> }
  | { quotaReset: Unstamped<QuotaResetResult> };

interface Entry {
  id: number;
  msg: ResultMessage;
}

/** The result's body (the one member set), where its resultId lives. */
function body(msg: ResultMessage): { resultId?: string } {
  return "applyResult" in msg ? msg.applyResult : "drift" in msg ? msg.drift : msg.quotaReset;
}

/** The message on the wire (entries are stamped when kept, so resultId is set). */
function toMessage(msg: ResultMessage): AgentMessage {
  if ("applyResult" in msg) return { applyResult: { ...msg.applyResult, resultId: msg.applyResult.resultId ?? "" } };
  if ("drift" in msg) return { drift: { ...msg.drift, resultId: msg.drift.resultId ?? "" } };
  return { quotaReset: { ...msg.quotaReset, resultId: msg.quotaReset.resultId ?? "" } };
}

export class Outbox {
  private entries: Entry[] = [];
  private nextId = 1;
  private chain: Promise<unknown> = Promise.resolve();
  /** Entries (by local id) written to the current stream and awaiting their ack. */
  private inFlight = new Set<number>();

  private constructor(
    private readonly file: string,
    /** Write to the stream; false when there is none (or the write failed). */
    private readonly send: (m: AgentMessage) => boolean,
    private readonly log: Logger,
  ) {}

  static async open(file: string, send: (m: AgentMessage) => boolean, log: Logger): Promise<Outbox> {
    const o = new Outbox(file, send, log);
    let stamped = false;
    try {
      const saved = JSON.parse(await readFile(file, "utf8")) as { entries?: Entry[] };
      if (Array.isArray(saved.entries))
        o.entries = saved.entries.filter(
          (e) => typeof e?.id === "number" && e.msg && typeof e.msg === "object" && body(e.msg),
        );
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        log.warn({ file, err: errorText(e) }, "outbox unreadable; starting empty");
    }
    // Entries kept by an agent that predates result ids get one now (kept from here on).
    for (const e of o.entries) {
      const b = body(e.msg);
      if (!b.resultId) {
        b.resultId = randomUUID();
        stamped = true;
      }
    }
    if (stamped) await o.persist();
    o.nextId = Math.max(0, ...o.entries.map((e) => e.id)) + 1;
    if (o.entries.length > 0) log.info({ count: o.entries.length }, "unacknowledged results from a previous run");
    return o;
  }

  /** An answer to this quota reset request waits here for the API's ack. */
  holdsQuotaReset(requestId: string): boolean {
    return this.entries.some((e) => "quotaReset" in e.msg && e.msg.quotaReset.requestId === requestId);
  }

  /** Results not yet acknowledged by the API. */
  get size(): number {
    return this.entries.length;
  }

  /** Stamp `msg` with a fresh resultId, keep it (durably), then send what is not on the stream yet, in order. */
  post(msg: ResultMessage): Promise<void> {
    return this.serial(async () => {
      body(msg).resultId = randomUUID();
      this.entries.push({ id: this.nextId++, msg });
      await this.persist();
      this.flushNow();
    });
  }

  /**
   * Drop unacked APPLYING reports of a target that was rolled back: resent later they would
   * earn a Confirm for rules the kernel no longer holds.
   */
  withdrawApplying(targetId: string): Promise<void> {
    return this.serial(async () => {
      const keep = this.entries.filter(
        (e) =>
          !(
            "applyResult" in e.msg &&
            e.msg.applyResult.targetId === targetId &&
            e.msg.applyResult.status === "APPLY_STATUS_APPLYING"
          ),
      );
      if (keep.length === this.entries.length) return;
      for (const e of this.entries) if (!keep.includes(e)) this.inFlight.delete(e.id);
      this.entries = keep;
      await this.persist();
    });
  }

  /** Send every unacked result again (after Hello on a new stream), oldest first. */
  flush(): Promise<void> {
    return this.serial(async () => this.flushNow());
  }

  /** The stream ended: nothing on it will be acked any more; all of it goes again on the next one. */
  disconnected(): void {
    this.inFlight.clear();
  }

  /** The API processed the result with this id: forget it. */
  ack(resultId: string): Promise<void> {
    return this.serial(async () => {
      const i = this.entries.findIndex((e) => body(e.msg).resultId === resultId);
      if (i < 0) return;
      const [e] = this.entries.splice(i, 1);
      this.inFlight.delete(e!.id);
      await this.persist();
    });
  }

  /** Resolves once nothing is waiting for an ack, or after `ms` (a shutdown's grace). */
  async drained(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.entries.length > 0 && this.inFlight.size > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
  }

  /** Resolves when every post/flush/ack started so far has finished. */
  idle(): Promise<void> {
    return this.serial(async () => undefined);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch((e) => this.log.error({ err: errorText(e) }, "outbox failed"));
    return run;
  }

  /** Write, in order, the entries not yet on the current stream; stop at the first refused write. */
  private flushNow(): void {
    for (const e of this.entries) {
      if (this.inFlight.has(e.id)) continue;
      if (!this.send(toMessage(e.msg))) return;
      this.inFlight.add(e.id);
    }
  }

  /** Never throws: a full disk must not stop results from being sent (see the header). */
  private async persist(): Promise<void> {
    try {
      await writeFileAtomic(this.file, JSON.stringify({ entries: this.entries }));
    } catch (e) {
      this.log.error(
        { file: this.file, pending: this.entries.length, err: errorText(e) },
        "cannot write the outbox to the state dir; results kept in memory only",
      );
    }
  }
}
