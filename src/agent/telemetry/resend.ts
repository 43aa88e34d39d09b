// Resending the oldest unacked telemetry batch while the stream stays up. A batch the API
// received but could not store (an error that does not close the stream) is never acked;
// without this it would wait for the next reconnect. After `timeoutMs` without an ack for
// the oldest spooled batch it is sent again, then after 2x, 4x ... up to `maxMs` while it
// stays unacked. The API ingests each (host, epoch, seq) once, so a resend is harmless.
// Only the oldest is resent: the API acks in any order, and whatever is behind the oldest
// follows once it is through (or at the next reconnect, which resends everything).

import { errorText } from "../errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { TelemetryBatch } from "../../protocol/agent.ts";

export interface AckWatchOptions {
  timeoutMs: number;
  /** Upper bound of the growing wait between resends of the same batch. */
  maxMs: number;
  /** The oldest spooled (unacked) batch, if any. */
  oldest: () => Promise<TelemetryBatch | undefined>;
  /** Write to the stream; false when there is none. */
  send: (b: TelemetryBatch) => boolean;
  log: Logger;
}

export class AckWatch {
  private timer: NodeJS.Timeout | undefined;
  /** Seq the running timer waits for, and how often it was resent. */
  private watching: number | undefined;
  private attempt = 0;
  /** Batches resent by this watch (tests and logs). */
  resent = 0;

  constructor(private readonly o: AckWatchOptions) {}

  /** Batches went out on the stream: make sure the oldest one is watched. */
  sent(): void {
    if (!this.timer) void this.arm();
  }

  /** An ack arrived: when it was the watched batch, watch the next oldest from now. */
  acked(seq: number): void {
    if (seq !== this.watching) return;
    this.stop();
    void this.arm();
  }

  /** Stream closed or agent stopping: the reconnect resends everything anyway. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.watching = undefined;
    this.attempt = 0;
  }

  private async arm(): Promise<void> {
    const b = await this.o.oldest().catch(() => undefined);
    if (!b || this.timer) return;
    if (Number(b.seq) !== this.watching) {
      this.watching = Number(b.seq);
      this.attempt = 0;
    }
    const delay = Math.min(this.o.maxMs, this.o.timeoutMs * 2 ** Math.min(this.attempt, 20));
    this.timer = setTimeout(() => void this.fire(Number(b.seq)), delay);
    this.timer.unref?.();
  }

  private async fire(seq: number): Promise<void> {
    this.timer = undefined;
    try {
      const b = await this.o.oldest();
      if (!b) return this.stop();
      if (Number(b.seq) === seq) {
        if (!this.o.send(b)) return this.stop();
        this.attempt++;
        this.resent++;
        this.o.log.warn(
          { epoch: b.epoch, seq: b.seq, attempt: this.attempt },
          "no telemetry ack in time; resending the oldest unacked batch",
        );
      }
      await this.arm();
    } catch (e) {
      this.o.log.warn({ err: errorText(e) }, "telemetry resend failed");
      this.stop();
    }
  }
}
