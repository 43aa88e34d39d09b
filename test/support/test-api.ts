// A small real gRPC peer for the agent's client tests: AgentService served by
// @grpc/grpc-js in the test process, from the same .proto. It records what the agent
// sends and lets the test answer (confirm, ack, drift, quota reset) or cut the stream.
// Like the API, it acks every result (ApplyResult, DriftReport, QuotaResetResult) by its
// result_id unless `autoAckResults` is off.

import * as grpc from "@grpc/grpc-js";
import { agentServiceDefinition } from "../../src/protocol/agent.ts";

export interface Received {
  stream: number;
  metadata: grpc.Metadata;
  msg: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export class TestApi {
  readonly server = new grpc.Server();
  port = 0;
  readonly received: Received[] = [];
  readonly enrolls: Record<string, unknown>[] = [];
  autoConfirm = true;
  autoAck = true;
  autoAckResults = true;
  private call: grpc.ServerDuplexStream<unknown, unknown> | undefined;
  private streams = 0;
  private waiters: (() => void)[] = [];

  /** `port`: bind a fixed port (a replica that comes back where the agent expects it). */
  async start(port = 0): Promise<void> {
    const service = agentServiceDefinition;
    this.server.addService(service, {
      Enroll: (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.enrolls.push(call.request);
        if (call.request.token !== "good-token")
          return cb({ code: grpc.status.PERMISSION_DENIED, details: "bad enrollment token" });
        cb(null, { hostId: "host-1", hostName: String(call.request.name), credential: "cred-secret-1" });
      },
      Connect: (call: grpc.ServerDuplexStream<Record<string, any>, unknown>) => {
        // eslint-disable-line @typescript-eslint/no-explicit-any
        const n = ++this.streams;
        this.call = call;
        call.on("data", (msg: Record<string, any>) => {
          // eslint-disable-line @typescript-eslint/no-explicit-any
          this.received.push({ stream: n, metadata: call.metadata, msg });
          // Like the API: APPLYING (the kernel holds it, waiting) earns the Confirm.
          if (this.autoConfirm && msg.applyResult?.status === "APPLY_STATUS_APPLYING") {
            call.write({ confirm: { deploymentId: msg.applyResult.deploymentId, targetId: msg.applyResult.targetId } });
          }
          if (this.autoAck && msg.telemetry)
            call.write({ telemetryAck: { epoch: msg.telemetry.epoch, seq: msg.telemetry.seq } });
          const result = msg.applyResult ?? msg.drift ?? msg.quotaReset;
          if (this.autoAckResults && result?.resultId) call.write({ resultAck: { resultId: result.resultId } });
          for (const w of this.waiters.splice(0)) w();
        });
        call.on("end", () => call.end());
        call.on("error", () => undefined);
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, port) =>
        e ? reject(e) : resolve(port),
      ),
    );
  }

  send(msg: Record<string, unknown>): void {
    if (!this.call) throw new Error("no agent stream");
    this.call.write(msg);
  }

  /** Cut the current stream as a crashed replica would. */
  cut(): void {
    // How grpc-js servers end a stream with a status (what src/api/grpc/session.ts does too).
    this.call?.emit("error", { code: grpc.status.UNAVAILABLE, details: "replica went away" });
    this.call = undefined;
  }

  /** Wait (bounded) until `pred` holds over what was received. */
  async waitFor<T>(pred: (r: Received[]) => T | undefined | false, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = pred(this.received);
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting; received: ${JSON.stringify(this.received.map((r) => Object.keys(r.msg).filter((k) => k !== "body")))}`,
        );
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  of(kind: string): Received[] {
    return this.received.filter((r) => r.msg[kind] !== undefined && r.msg[kind] !== null);
  }

  async stop(): Promise<void> {
    this.server.forceShutdown();
  }
}
