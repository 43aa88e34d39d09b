// A small real gRPC peer for the agent's client tests: AgentService served by
// @grpc/grpc-js in the test process, from the same .proto. It records what the agent
// sends and lets the test answer (confirm, ack, drift, quota reset) or cut the stream.
// Like the API, it acks every result (ApplyResult, DriftReport, QuotaResetResult) by its
// result_id unless `autoAckResults` is off.
//
// Mutual TLS by default, like the product: a real Palisade CA (one per test process, so a
// TestApi restarted on the same port is the same server to an enrolled agent), a server
// certificate from it, an enrollment port (TLS, no client certificate) that signs the
// agent's CSR, and the agent port requiring a client certificate from that CA. `token`
// pins the CA. `{ plaintext: true }` only for tests about plaintext.

import * as grpc from "@grpc/grpc-js";
import { AgentCa } from "../../src/api/tls/ca.ts";
import { agentServiceDefinition } from "../../src/protocol/agent.ts";
import { joinEnrollToken } from "../../src/protocol/pin.ts";

let labCa: Promise<AgentCa> | undefined;
/** The test process's CA (created once). */
export const testCa = (): Promise<AgentCa> => (labCa ??= AgentCa.create().then((c) => c.ca));

export interface Received {
  stream: number;
  /** Mutual TLS: the serial of the client certificate the stream authenticated with. */
  certSerial: string | undefined;
  metadata: grpc.Metadata;
  msg: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export class TestApi {
  readonly server = new grpc.Server();
  port = 0;
  /** The enrollment listener (mutual TLS only). */
  enrollPort = 0;
  /** The enrollment token to give the agent (pins the CA with mutual TLS). */
  token = "good-token";
  ca: AgentCa | undefined;
  private enrollServer: grpc.Server | undefined;
  constructor(private readonly o: { plaintext?: boolean; clientCertSeconds?: number } = {}) {}
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
    const ca = this.o.plaintext ? undefined : await testCa();
    this.ca = ca;
    const enroll = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      this.enrolls.push(call.request);
      if (call.request.token !== "good-token")
        return cb({ code: grpc.status.PERMISSION_DENIED, details: "bad enrollment token" });
      const answer = { hostId: "host-1", hostName: String(call.request.name), credential: "cred-secret-1" };
      if (!ca) return cb(null, answer);
      ca.issueClient(String(call.request.csr ?? ""), "host-1", this.o.clientCertSeconds ?? 3600).then(
        (c) => cb(null, { ...answer, certificate: c.certPem }),
        (e: Error) => cb({ code: grpc.status.INVALID_ARGUMENT, details: e.message }),
      );
    };
    const peerSerial = (call: grpc.ServerDuplexStream<unknown, unknown>) =>
      call.getAuthContext()?.sslPeerCertificate?.serialNumber?.toLowerCase().replace(/^0+/, "");
    this.server.addService(service, {
      Enroll: enroll,
      Renew: (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (!ca) return cb({ code: grpc.status.FAILED_PRECONDITION, details: "plaintext: nothing to renew" });
        ca.issueClient(String(call.request.csr ?? ""), "host-1", this.o.clientCertSeconds ?? 3600).then(
          (c) => cb(null, { certificate: c.certPem }),
          (e: Error) => cb({ code: grpc.status.INVALID_ARGUMENT, details: e.message }),
        );
      },
      Connect: (call: grpc.ServerDuplexStream<Record<string, any>, unknown>) => {
        // eslint-disable-line @typescript-eslint/no-explicit-any
        const n = ++this.streams;
        this.call = call;
        const certSerial = peerSerial(call);
        call.on("data", (msg: Record<string, any>) => {
          // eslint-disable-line @typescript-eslint/no-explicit-any
          this.received.push({ stream: n, certSerial, metadata: call.metadata, msg });
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
    let creds = grpc.ServerCredentials.createInsecure();
    if (ca) {
      const issued = await ca.issueServer(["127.0.0.1", "localhost"]);
      // The chain carries the CA: the enrolling agent finds the pinned certificate in it.
      const pair = {
        private_key: Buffer.from(issued.keyPem),
        cert_chain: Buffer.from(`${issued.certPem.trim()}\n${ca.certPem.trim()}\n`),
      };
      creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [pair], true);
      const es = new grpc.Server();
      es.addService(service, {
        Enroll: enroll,
        Renew: (_c: unknown, cb: grpc.sendUnaryData<unknown>) =>
          cb({ code: grpc.status.FAILED_PRECONDITION, details: "enrollment port" }),
        Connect: (call: grpc.ServerDuplexStream<unknown, unknown>) =>
          call.emit("error", { code: grpc.status.FAILED_PRECONDITION, details: "enrollment port" }),
      });
      this.enrollServer = es;
      this.enrollPort = await new Promise<number>((resolve, reject) =>
        es.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createSsl(null, [pair], false), (e, p) =>
          e ? reject(e) : resolve(p),
        ),
      );
      this.token = joinEnrollToken("good-token", ca.fingerprint);
    }
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, creds, (e, port) => (e ? reject(e) : resolve(port))),
    );
  }

  /** Agent flags that enroll against this API (token, and the enrollment port with mutual TLS). */
  enrollArgs(): string[] {
    return [
      "--enroll-token",
      this.token,
      ...(this.enrollPort ? ["--enroll-server", `127.0.0.1:${this.enrollPort}`] : []),
    ];
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
    this.enrollServer?.forceShutdown();
  }
}
