// Test kit for the agent protocol and deployments: a real app (REST), real agent gRPC
// servers ("replicas", each with its own Redis subscriber) and simulated agents, which are
// plain grpc-js clients in this process that enroll, say hello and answer DesiredState the
// way a test tells them to. The replicas run mutual TLS like the product's default (a CA in
// the test database) and the agents enroll with a CSR and connect with their certificates;
// `{ tls: false }` only for tests about the plaintext lab mode (bearer credentials).
// Also used by bench/fanout.ts and bench/mtls.ts.
import { createPrivateKey, randomBytes } from "node:crypto";
import { ensureCa, type AgentCa } from "../../src/api/tls/ca.ts";
import { createCsr, newPrivateKeyPem, splitEnrollToken } from "../../src/protocol/pki.ts";
import * as grpc from "@grpc/grpc-js";
import { silentLog, startAgentServer, type Log, type RunningAgentServer } from "../../src/api/grpc/index.ts";
import type { AgentContext } from "../../src/api/grpc/context.ts";
import type { AgentServerOptions } from "../../src/api/grpc/server.ts";
import { AgentServiceClient, type DesiredState, type ServerMessage } from "../../src/protocol/agent.ts";
import { startDeployWorker, type RunningDeployWorker } from "../../src/api/deploy/worker.ts";
import { Backoff } from "../../src/agent/backoff.ts";
import { fetchPinnedCa } from "../../src/agent/tls.ts";
import { startTestApp, type TestApp } from "./app.ts";
import { deleteRedisKeys } from "./db.ts";

import { waitFor } from "./wait.ts";

export { waitFor };

export type Answer =
  | { status: "applied" | "failed" | "rolled_back"; error?: string; delayMs?: number }
  | { status: "none" }
  | { status: "hold" };

export interface Fleet {
  t: TestApp;
  /** Queue prefix of this fleet (also set as PALISADE_QUEUE_PREFIX for the routes). */
  prefix: string;
  replicas: RunningAgentServer[];
  /** The CA when the fleet runs mutual TLS (the default). */
  ca: AgentCa | undefined;
  /** Enroll on replica 0 the way the fleet's channel wants (CSR on the enrollment port, or bearer in plaintext). */
  enroll(req: { token: string; name: string; capabilities?: unknown }): ReturnType<typeof enroll>;
  /** Another replica on this fleet's channel; `ctx`/`opts` override parts of its context and options (a test's sweep pace, a wrapped db). */
  addReplica(o?: { ctx?: Partial<AgentContext>; opts?: Partial<AgentServerOptions> }): Promise<RunningAgentServer>;
  startWorker(opts?: { pollMs?: number; lockMs?: number }): Promise<RunningDeployWorker>;
  enrollmentToken(labels?: Record<string, string>, ttlSeconds?: number): Promise<string>;
  /** Enroll a simulated agent (through replica 0 unless given) and connect it. */
  agent(
    name: string,
    labels?: Record<string, string>,
    opts?: { replica?: number; connect?: boolean; timeoutMs?: number; retry?: ConnectRetry },
  ): Promise<SimAgent>;
  close(): Promise<void>;
}

/** A fleet whose queue prefix is unique: the app's config and the workers use it (and child processes inherit it from the env). */
export async function startFleet(
  opts: { log?: Log; replicas?: number; tls?: boolean; clientCertTtlSeconds?: number; renewsPerHour?: number } = {},
): Promise<Fleet> {
  const prefix = `palisade-test:${process.pid}:${randomBytes(4).toString("hex")}`;
  process.env.PALISADE_QUEUE_PREFIX = prefix;
  const t = await startTestApp({ queue: { prefix, lockMs: 5_000 } });
  const log = opts.log ?? silentLog;
  const replicas: RunningAgentServer[] = [];
  const workers: RunningDeployWorker[] = [];
  const agents: SimAgent[] = [];
  const ca = (opts.tls ?? true) ? await ensureCa(t.db, "grpc-kit-secret-key-0123456789abcdef") : undefined;
  const fleet: Fleet = {
    t,
    prefix,
    replicas,
    ca,
    async addReplica(o = {}) {
      const tls = ca && {
        ca,
        enrollAddress: "127.0.0.1:0",
        serverNames: ["127.0.0.1"],
        clientCertTtlSeconds: opts.clientCertTtlSeconds ?? 3600,
        ...(opts.renewsPerHour && { renewsPerHour: opts.renewsPerHour }),
      };
      const r = await startAgentServer(
        { db: t.db, redis: t.redis, log, ...o.ctx },
        { address: "127.0.0.1:0", ...(tls ? { tls } : {}), ...o.opts },
      );
      replicas.push(r);
      return r;
    },
    async startWorker(w = {}) {
      const worker = await startDeployWorker(
        { db: t.db, redis: t.redis, log },
        { prefix, lockMs: w.lockMs ?? 5_000, pollMs: w.pollMs ?? 100 },
      );
      workers.push(worker);
      return worker;
    },
    async enroll(req) {
      const replica = replicas[0];
      if (!replica) throw new Error("no replica");
      if (!ca) return enroll(`127.0.0.1:${replica.port}`, req);
      const csr = await createCsr(createPrivateKey(newPrivateKeyPem()), req.name);
      return enroll(
        `127.0.0.1:${replica.enrollPort}`,
        { ...req, token: splitEnrollToken(req.token).secret, csr },
        grpc.credentials.createSsl(Buffer.from(ca.certPem)),
      );
    },
    async enrollmentToken(labels = {}, ttlSeconds = 3600) {
      const res = await t.req("POST", "/v1/enrollment-tokens", { body: { labels, ttlSeconds } });
      if (res.statusCode !== 201) throw new Error(`enrollment token: ${res.statusCode} ${res.body}`);
      return (res.json() as { token: string }).token;
    },
    async agent(name, labels = {}, o = {}) {
      const replica = replicas[o.replica ?? 0];
      if (!replica) throw new Error("no such replica");
      const a = ca
        ? await SimAgent.enrollTls(
            `127.0.0.1:${replica.enrollPort}`,
            `127.0.0.1:${replica.port}`,
            await fleet.enrollmentToken(labels),
            name,
            ca.certPem,
          )
        : await SimAgent.enroll(`127.0.0.1:${replica.port}`, await fleet.enrollmentToken(labels), name);
      agents.push(a);
      if (o.connect !== false)
        await a.connect({ ...(o.timeoutMs && { timeoutMs: o.timeoutMs }), ...(o.retry && { retry: o.retry }) });
      return a;
    },
    async close() {
      for (const a of agents) a.close();
      for (const w of workers) await w.stop().catch(() => {});
      for (const r of replicas) await r.stop().catch(() => {});
      await deleteRedisKeys(prefix);
      await t.close();
    },
  };
  for (let i = 0; i < (opts.replicas ?? 1); i++) await fleet.addReplica();
  return fleet;
}

export function client(
  address: string,
  creds = grpc.credentials.createInsecure(),
): grpc.Client & Record<string, Function> {
  return new AgentServiceClient(address, creds, {
    "grpc.max_send_message_length": 64 * 1024 * 1024,
    // Its own TCP connection, as a real agent has: grpc-js otherwise shares one connection
    // among all channels to the same address with equal credentials (every plaintext
    // simulated agent of a replica on one HTTP/2 connection, each TLS one on its own).
    "grpc.use_local_subchannel_pool": 1,
  }) as unknown as grpc.Client & Record<string, Function>;
}

/** How a simulated agent retries a connect (SimAgent.connect). */
export interface ConnectRetry {
  attemptMs: number;
  initialMs: number;
  maxMs: number;
}

/** A simulated agent's mutual-TLS material. */
export interface SimTls {
  keyPem: string;
  certPem: string;
  caPem: string;
}

export function enroll(
  address: string,
  req: { token: string; name: string; capabilities?: unknown; csr?: string },
  creds?: grpc.ChannelCredentials,
): Promise<{ hostId: string; hostName: string; credential: string; certificate: string }> {
  const c = client(address, creds);
  return new Promise((resolve, reject) =>
    c.Enroll!(
      req,
      (
        err: grpc.ServiceError | null,
        res: { hostId: string; hostName: string; credential: string; certificate: string },
      ) => {
        c.close();
        if (err) reject(err);
        else resolve(res);
      },
    ),
  );
}

const SIM_CAPS = {
  nftVersion: "1.0.9",
  kernel: "6.1",
  ipv6: true,
  features: ["fib"],
  xtablesModules: [],
  agentVersion: "sim",
};

export interface StreamEnd {
  code: number;
  details: string;
  palisadeCode: string | undefined;
}

/** A simulated agent: one Connect stream, answers DesiredState per `answer(desired)`. */
export class SimAgent {
  readonly received: ServerMessage[] = [];
  readonly desired: (DesiredState & { at: number })[] = [];
  readonly confirms: string[] = [];
  /** When each target's Confirm arrived (performance.now()). */
  readonly confirmedAt = new Map<string, number>();
  answer: (d: DesiredState) => Answer = () => ({ status: "applied" });
  /** Features its Hello reports (undefined: a Hello without capabilities, as before). */
  helloFeatures: string[] | undefined;
  /** Called with every server message as it arrives (performance.now()). */
  onServerMessage: ((m: ServerMessage, at: number) => void) | undefined;
  applied: { ruleset: string; version: number; checksum: string } = { ruleset: "", version: 0, checksum: "" };
  private call: grpc.ClientDuplexStream<unknown, ServerMessage> | undefined;
  private c: (grpc.Client & Record<string, Function>) | undefined;
  private held: (() => void)[] = [];
  ended: Promise<StreamEnd> = new Promise(() => {});
  /** How the current stream ended, once it has. */
  endedWith: StreamEnd | undefined;

  constructor(
    readonly address: string,
    readonly hostId: string,
    readonly name: string,
    readonly credential: string,
    readonly tls?: SimTls,
  ) {}

  static async enroll(address: string, token: string, name: string): Promise<SimAgent> {
    const r = await enroll(address, { token, name, capabilities: SIM_CAPS });
    return new SimAgent(address, r.hostId, r.hostName, r.credential);
  }

  /**
   * Enroll as the real agent does with a pinned token: find the pinned CA in the chain the
   * enrollment port presents, then enrollTls with it.
   */
  static async enrollPinned(enrollAddress: string, address: string, token: string, name: string): Promise<SimAgent> {
    const pin = splitEnrollToken(token).pin;
    if (!pin) throw new Error("the enrollment token pins no CA (a plaintext API?)");
    const caPem = await fetchPinnedCa(enrollAddress, pin, 10_000);
    return SimAgent.enrollTls(enrollAddress, address, token, name, caPem);
  }

  /** Enroll on a mutual-TLS replica's enrollment port (CSR for a new key), then connect to `address` with the certificate. */
  static async enrollTls(
    enrollAddress: string,
    address: string,
    token: string,
    name: string,
    caPem: string,
  ): Promise<SimAgent> {
    const keyPem = newPrivateKeyPem();
    const csr = await createCsr(createPrivateKey(keyPem), name);
    const r = await enroll(
      enrollAddress,
      { token: splitEnrollToken(token).secret, name, capabilities: SIM_CAPS, csr },
      grpc.credentials.createSsl(Buffer.from(caPem)),
    );
    return new SimAgent(address, r.hostId, r.hostName, r.credential, { keyPem, certPem: r.certificate, caPem });
  }

  /** A client of this agent's own channel (its certificate with mutual TLS). */
  client(address = this.address): grpc.Client & Record<string, Function> {
    return client(address, this.creds());
  }

  /** Connect metadata that authenticates this agent: its bearer credential in plaintext, nothing with mutual TLS (the certificate is the identity). */
  authMetadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (!this.tls) md.set("authorization", `Bearer ${this.credential}`);
    return md;
  }

  creds(): grpc.ChannelCredentials {
    const t = this.tls;
    return t
      ? grpc.credentials.createSsl(Buffer.from(t.caPem), Buffer.from(t.keyPem), Buffer.from(t.certPem))
      : grpc.credentials.createInsecure();
  }

  /** Failed connect attempts retried so far (the bench reports them). */
  retries = 0;

  /**
   * Open the stream and say hello; resolves once the server has seen the hello (it answers
   * heartbeats after it). With `retry`, as the real agent does: a stream that ends or gets
   * no heartbeat echo within `attemptMs` is dropped and opened again after an exponential,
   * jittered delay (src/agent/backoff.ts), until `timeoutMs` is spent. A refusal with a
   * palisade-code (revoked, wrong host...) is never retried.
   */
  async connect(
    opts: { address?: string; metadata?: Record<string, string>; timeoutMs?: number; retry?: ConnectRetry } = {},
  ): Promise<void> {
    if (!opts.retry) return this.connectOnce(opts);
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    const backoff = new Backoff({ initialMs: opts.retry.initialMs, maxMs: opts.retry.maxMs });
    for (let attempt = 0; attempt < 1000; attempt++) {
      const left = deadline - Date.now();
      try {
        return await this.connectOnce({ ...opts, timeoutMs: Math.max(1, Math.min(opts.retry.attemptMs, left)) });
      } catch (e) {
        const refused = this.endedWith?.palisadeCode !== undefined;
        const wait = backoff.next();
        if (refused || Date.now() + wait >= deadline) throw e;
        this.retries++;
        this.close();
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    throw new Error(`${this.name}: no connect in 1000 attempts`);
  }

  private async connectOnce(opts: {
    address?: string;
    metadata?: Record<string, string>;
    timeoutMs?: number;
  }): Promise<void> {
    this.close();
    this.c = client(opts.address ?? this.address, this.creds());
    const md = new grpc.Metadata();
    if (!this.tls) md.set("authorization", `Bearer ${this.credential}`);
    for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
    const call = this.c.Connect!(md) as grpc.ClientDuplexStream<unknown, ServerMessage>;
    this.call = call;
    this.ended = streamEnd(call);
    this.endedWith = undefined;
    void this.ended.then((e) => {
      if (this.call === call) this.endedWith = e;
    });
    call.on("data", (m: ServerMessage) => this.onMessage(m));
    const capabilities = this.helloFeatures ? { ...SIM_CAPS, features: this.helloFeatures, unavailable: [] } : null;
    call.write({ hello: { capabilities, applied: this.applied, telemetryEpoch: "e1" } });
    await this.ping(opts.timeoutMs);
  }

  /** Heartbeat round trip: everything sent before it has been handled by the server. */
  async ping(timeoutMs = 10_000): Promise<void> {
    const seq = String(Math.floor(Math.random() * 1e9));
    const before = this.received.length;
    this.send({ heartbeat: { seq, unixMs: String(Date.now()) } });
    await waitFor(
      () => {
        // A stream that ended will never echo: say how it ended instead of timing out.
        if (this.endedWith)
          throw new Error(`stream of ${this.name} ended: ${this.endedWith.code} ${this.endedWith.details}`);
        return this.received.slice(before).some((m) => m.heartbeat?.seq === seq);
      },
      timeoutMs,
      `heartbeat echo for ${this.name}`,
    );
  }

  send(msg: Record<string, unknown>): void {
    this.call?.write(msg);
  }

  report(
    d: { deploymentId: string; targetId: string; version: DesiredState["version"]; attempt?: number },
    status: "applied" | "failed" | "rolled_back",
    error = "",
  ): void {
    const code = {
      applied: "APPLY_STATUS_APPLIED",
      failed: "APPLY_STATUS_FAILED",
      rolled_back: "APPLY_STATUS_ROLLED_BACK",
    }[status];
    this.send({
      applyResult: {
        deploymentId: d.deploymentId,
        targetId: d.targetId,
        version: d.version,
        status: code,
        error,
        attempt: d.attempt ?? 0,
      },
    });
    if (status === "applied" && d.version) this.applied = { ...d.version };
  }

  /** Answer every held DesiredState as applied. */
  release(): void {
    for (const fn of this.held.splice(0)) fn();
  }

  close(): void {
    this.call?.cancel();
    this.call = undefined;
    this.c?.close();
    this.c = undefined;
  }

  private onMessage(m: ServerMessage): void {
    this.onServerMessage?.(m, performance.now());
    this.received.push(m);
    if (m.confirm) {
      this.confirms.push(m.confirm.targetId);
      this.confirmedAt.set(m.confirm.targetId, performance.now());
    }
    const d = m.desiredState;
    if (!d) return;
    this.desired.push({ ...d, at: Date.now() });
    const a = this.answer(d);
    if (a.status === "none") return;
    if (a.status === "hold") {
      this.held.push(() => this.report(d, "applied"));
      return;
    }
    const go = () => this.report(d, a.status, a.error ?? "");
    if (a.delayMs) setTimeout(go, a.delayMs);
    else go();
  }
}

export function streamEnd(call: grpc.ClientDuplexStream<unknown, unknown>): Promise<StreamEnd> {
  return new Promise((resolve) => {
    call.on("error", () => {});
    call.on("status", (s: grpc.StatusObject) =>
      resolve({ code: s.code, details: s.details, palisadeCode: s.metadata.get("palisade-code")[0]?.toString() }),
    );
  });
}
