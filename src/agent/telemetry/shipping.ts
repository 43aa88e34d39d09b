// Telemetry on the stream: each new batch is sent as the collector spools it; the API's
// TelemetryAck deletes it from the spool; after (re)connect everything spooled goes again,
// oldest first; while the stream stays up, a batch sent but never acked goes again after
// the ack timeout (resend.ts).
import type { AgentMessage } from "../../protocol/agent.ts";
import type { Logger } from "../../runtime/log.ts";
import { errorText } from "../errors.ts";
import type { Collector } from "./collector.ts";
import { AckWatch } from "./resend.ts";
import type { Spool } from "./spool.ts";

export interface TelemetryShippingOptions {
  spool: Spool;
  collector: Collector;
  /** Writes to the stream; false when it is down. */
  send: (m: AgentMessage) => boolean;
  ackTimeoutMs: number;
  log: Logger;
}

export class TelemetryShipping {
  private readonly ackWatch: AckWatch;

  constructor(private readonly o: TelemetryShippingOptions) {
    this.ackWatch = new AckWatch({
      timeoutMs: o.ackTimeoutMs,
      maxMs: Math.max(o.ackTimeoutMs, 600_000),
      oldest: () => o.spool.oldest(),
      send: (b) => o.send({ telemetry: b }),
      log: o.log,
    });
    o.collector.onBatch = (b) => {
      if (o.send({ telemetry: b })) this.ackWatch.sent();
    };
  }

  /** The API's TelemetryAck: that batch (and those before it) leave the spool. */
  acked(m: { epoch: string; seq: number }): void {
    void this.o.spool
      .ack(m.epoch, m.seq)
      .then(() => this.ackWatch.acked(m.seq))
      .catch((e) => this.o.log.warn({ err: errorText(e) }, "ack failed"));
  }

  /** After (re)connect: every spooled batch, oldest first, until the stream refuses one. */
  async resend(): Promise<void> {
    for (const b of await this.o.spool.pending()) if (!this.o.send({ telemetry: b })) return;
    this.ackWatch.sent();
  }

  /** The stream ended, or the agent stops: no resend timer. */
  stop(): void {
    this.ackWatch.stop();
  }
}
