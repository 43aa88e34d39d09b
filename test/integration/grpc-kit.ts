// Test kit for the agent protocol and deployments: a real app (REST), real agent gRPC
// servers ("replicas", each with its own Redis subscriber) and simulated agents, which are
// plain grpc-js clients in this process that enroll, say hello and answer DesiredState the
// way a test tells them to. Also used by bench/fanout.ts.
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { silentLog, startAgentServer, type Log, type RunningAgentServer, type ServerMessage } from "../../src/api/grpc/index.ts";
import { agentService } from "../../src/api/grpc/proto.ts";
import type { DesiredStateMsg } from "../../src/api/grpc/proto.ts";
import { startDeployWorker, type RunningDeployWorker } from "../../src/api/deploy/worker.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { TEST_REDIS_URL } from "../support/db.ts";

export type Answer =
  | { status: "applied" | "failed" | "rolled_back"; error?: string; delayMs?: number }
  | { status: "none" }
  | { status: "hold" };

export interface Fleet {
  t: TestApp;
  /** Queue prefix of this fleet (also set as PALISADE_QUEUE_PREFIX for the routes). */
  prefix: string;
  replicas: RunningAgentServer[];
  addReplica(): Promise<RunningAgentServer>;
  startWorker(opts?: { pollMs?: number; lockMs?: number }): Promise<RunningDeployWorker>;
  enrollmentToken(labels?: Record<string, string>, ttlSeconds?: number): Promise<string>;
  /** Enroll a simulated agent (through replica 0 unless given) and connect it. */
  agent(name: string, labels?: Record<string, string>, opts?: { replica?: number; connect?: boolean }): Promise<SimAgent>;
  close(): Promise<void>;
}

/** A fleet whose queue prefix is unique; the env var must be set before the app builds its routes. */
export async function startFleet(opts: { log?: Log; replicas?: number } = {}): Promise<Fleet> {
  const prefix = `palisade-test:${process.pid}:${randomBytes(4).toString("hex")}`;
  process.env.PALISADE_QUEUE_PREFIX = prefix;
  const t = await startTestApp();
  const log = opts.log ?? silentLog;
  const replicas: RunningAgentServer[] = [];
  const workers: RunningDeployWorker[] = [];
  const agents: SimAgent[] = [];
  const fleet: Fleet = {
    t,
    prefix,
    replicas,
    async addReplica() {
      const r = await startAgentServer({ db: t.db, redis: t.redis, log }, { address: "127.0.0.1:0" });
      replicas.push(r);
      return r;
    },
    async startWorker(w = {}) {
      const worker = await startDeployWorker({ db: t.db, redis: t.redis, log }, { prefix, lockMs: w.lockMs ?? 5_000, pollMs: w.pollMs ?? 100 });
      workers.push(worker);
      return worker;
    },
    async enrollmentToken(labels = {}, ttlSeconds = 3600) {
      const res = await t.req("POST", "/v1/enrollment-tokens", { body: { labels, ttlSeconds } });
      if (res.statusCode !== 201) throw new Error(`enrollment token: ${res.statusCode} ${res.body}`);
      return (res.json() as { token: string }).token;
    },
    async agent(name, labels = {}, o = {}) {
      const replica = replicas[o.replica ?? 0];
      if (!replica) throw new Error("no such replica");
      const a = await SimAgent.enroll(`127.0.0.1:${replica.port}`, await fleet.enrollmentToken(labels), name);
      agents.push(a);
      if (o.connect !== false) await a.connect();
      return a;
    },
    async close() {
      for (const a of agents) a.close();
      for (const w of workers) await w.stop().catch(() => {});
      for (const r of replicas) await r.stop().catch(() => {});
      const redis = new Redis(TEST_REDIS_URL);
      try {
        const keys = await redis.keys(`${prefix}:*`);
        if (keys.length) await redis.del(...keys);
      } finally {
        redis.disconnect();
      }
      await t.close();
    },
  };
  for (let i = 0; i < (opts.replicas ?? 1); i++) await fleet.addReplica();
  return fleet;
}

export function client(address: string): grpc.Client & Record<string, Function> {
  const { Client } = agentService();
  return new Client(address, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": 64 * 1024 * 1024 }) as grpc.Client & Record<string, Function>;
}

export function enroll(address: string, req: { token: string; name: string; capabilities?: unknown }): Promise<{ hostId: string; hostName: string; credential: string }> {
  const c = client(address);
  return new Promise((resolve, reject) =>
    c.Enroll!(req, (err: grpc.ServiceError | null, res: { hostId: string; hostName: string; credential: string }) => {
      c.close();
      if (err) reject(err);
      else resolve(res);
    }),
  );
}

export interface StreamEnd {
  code: number;
  details: string;
  palisadeCode: string | undefined;
}

/** A simulated agent: one Connect stream, answers DesiredState per `answer(desired)`. */
export class SimAgent {
  readonly received: ServerMessage[] = [];
  readonly desired: (DesiredStateMsg & { at: number })[] = [];
  readonly confirms: string[] = [];
  /** When each target's Confirm arrived (performance.now()). */
  readonly confirmedAt = new Map<string, number>();
  answer: (d: DesiredStateMsg) => Answer = () => ({ status: "applied" });
  applied: { ruleset: string; version: number; checksum: string } = { ruleset: "", version: 0, checksum: "" };
  private call: grpc.ClientDuplexStream<unknown, ServerMessage> | undefined;
  private c: (grpc.Client & Record<string, Function>) | undefined;
  private held: (() => void)[] = [];
  ended: Promise<StreamEnd> = new Promise(() => {});

  constructor(
    readonly address: string,
    readonly hostId: string,
    readonly name: string,
    readonly credential: string,
  ) {}

  static async enroll(address: string, token: string, name: string): Promise<SimAgent> {
    const r = await enroll(address, { token, name, capabilities: { nftVersion: "1.0.9", kernel: "6.1", ipv6: true, features: ["fib"], xtablesModules: [], agentVersion: "sim" } });
    return new SimAgent(address, r.hostId, r.hostName, r.credential);
  }

  /** Open the stream and say hello; resolves once the server has seen the hello (it answers heartbeats after it). */
  async connect(opts: { address?: string; metadata?: Record<string, string> } = {}): Promise<void> {
    this.close();
    this.c = client(opts.address ?? this.address);
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${this.credential}`);
    for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
    const call = this.c.Connect!(md) as grpc.ClientDuplexStream<unknown, ServerMessage>;
    this.call = call;
    this.ended = streamEnd(call);
    call.on("data", (m: ServerMessage) => this.onMessage(m));
    call.write({ hello: { capabilities: null, applied: this.applied, telemetryEpoch: "e1" } });
    await this.ping();
  }

  /** Heartbeat round trip: everything sent before it has been handled by the server. */
  async ping(timeoutMs = 10_000): Promise<void> {
    const seq = String(Math.floor(Math.random() * 1e9));
    const before = this.received.length;
    this.send({ heartbeat: { seq, unixMs: String(Date.now()) } });
    await waitFor(() => this.received.slice(before).some((m) => "heartbeat" in m && m.heartbeat.seq === seq), timeoutMs, `heartbeat echo for ${this.name}`);
  }

  send(msg: Record<string, unknown>): void {
    this.call?.write(msg);
  }

  report(d: { deploymentId: string; targetId: string; version: DesiredStateMsg["version"] }, status: "applied" | "failed" | "rolled_back", error = ""): void {
    const code = { applied: "APPLY_STATUS_APPLIED", failed: "APPLY_STATUS_FAILED", rolled_back: "APPLY_STATUS_ROLLED_BACK" }[status];
    this.send({ applyResult: { deploymentId: d.deploymentId, targetId: d.targetId, version: d.version, status: code, error } });
    if (status === "applied") this.applied = { ...d.version };
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
    this.received.push(m);
    if ("confirm" in m) {
      this.confirms.push(m.confirm.targetId);
      this.confirmedAt.set(m.confirm.targetId, performance.now());
    }
    if (!("desiredState" in m)) return;
    const d = m.desiredState;
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
    call.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details, palisadeCode: s.metadata.get("palisade-code")[0]?.toString() }));
  });
}

export async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string, stepMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
