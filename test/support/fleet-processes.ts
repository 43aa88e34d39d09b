// Pieces of the fleet kernel tests and the fleet benches: API replicas as child processes
// (`palisade server`, startReplicas starts them ready), a tiny L4 balancer (unix socket -> the replicas' loopback gRPC ports, preferred one
// first, the other when it is down) standing in for a load balancer, and JSON-log
// scanning. Everything is killed by its own pid.
// The replicas run the agent channel with mutual TLS like the product's default: one
// secret key for the fleet (replicas of one database share its CA), an enrollment port
// (`ports.enroll`, default the agent port + 1) and server names (127.0.0.1 and localhost
// unless `PALISADE_TLS_SERVER_NAMES` names the address the agents use).
// `PALISADE_GRPC_PLAINTEXT: "1"` in `env` only for tests about the plaintext lab mode.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, connect, type Server, type Socket } from "node:net";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { NetnsLab } from "./netns.ts";
import { freePorts } from "./ports.ts";

export const BIN = fileURLToPath(new URL("../../bin/palisade", import.meta.url));

/** The fleet's PALISADE_SECRET_KEY (every replica of a database needs the same one). */
export const FLEET_SECRET_KEY = "fleet-processes-test-secret-key-0123456789abcdef";

export interface Replica {
  name: string;
  httpPort: number;
  grpcPort: number;
  /** What it was started with (a restart reuses it). */
  env: Record<string, string>;
  /** `http://127.0.0.1:PORT`, the REST API. */
  url: string;
  /** The enrollment listener (mutual TLS; 0 in plaintext mode). */
  enrollPort: number;
  child: ChildProcess;
  out(): string;
  /** JSON log lines parsed so far. */
  logs(): Record<string, unknown>[];
  exited: Promise<void>;
}

export function startReplica(
  name: string,
  ports: { http: number; grpc: number; enroll?: number },
  env: Record<string, string>,
): Replica {
  const plaintext = env.PALISADE_GRPC_PLAINTEXT === "1";
  const enrollPort = plaintext ? 0 : (ports.enroll ?? ports.grpc + 1);
  const child = spawn(process.execPath, [BIN, "server", "--no-migrate"], {
    env: {
      ...process.env,
      PALISADE_GRPC_PLAINTEXT: "",
      PALISADE_SECRET_KEY_FILE: "",
      PALISADE_SECRET_KEY: FLEET_SECRET_KEY,
      PALISADE_TLS_SERVER_NAMES: "127.0.0.1,localhost",
      ...env,
      ...(enrollPort && { GRPC_ENROLL_PORT: String(enrollPort) }),
      HOST: "127.0.0.1",
      PORT: String(ports.http),
      GRPC_PORT: String(ports.grpc),
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    name,
    httpPort: ports.http,
    grpcPort: ports.grpc,
    env,
    url: `http://127.0.0.1:${ports.http}`,
    enrollPort,
    child,
    out: () => out,
    logs: () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    exited,
  };
}

export async function killReplica(r: Replica): Promise<void> {
  if (r.child.exitCode === null && r.child.signalCode === null && r.child.pid) process.kill(r.child.pid, "SIGKILL");
  await r.exited;
}

/** Until `r` answers /healthz and its log says the agent gRPC server listens. */
export async function replicaReady(r: Replica): Promise<void> {
  await waitUntil(
    async () => (await fetch(`${r.url}/healthz`).catch(() => undefined))?.ok,
    60_000,
    `replica ${r.name} up\n${r.out()}`,
    100,
  );
  await waitUntil(
    async () => r.out().includes("agent gRPC server listening"),
    30_000,
    `replica ${r.name} gRPC\n${r.out()}`,
    100,
  );
}

/**
 * `n` replicas (A, B, ...) on free loopback ports with `env`, each ready (replicaReady).
 * When one does not come up, all are killed before the error is thrown: the caller holds
 * nothing to clean up.
 */
export async function startReplicas(n: number, env: Record<string, string>): Promise<Replica[]> {
  const replicas: Replica[] = [];
  try {
    // Every replica's ports chosen before any replica starts (freePorts).
    const ports = await freePorts(3 * n);
    for (let i = 0; i < n; i++)
      replicas.push(
        startReplica(
          String.fromCharCode(65 + i),
          { http: ports[3 * i]!, grpc: ports[3 * i + 1]!, enroll: ports[3 * i + 2]! },
          env,
        ),
      );
    for (const r of replicas) await replicaReady(r);
    return replicas;
  } catch (e) {
    for (const r of replicas) await killReplica(r);
    throw e;
  }
}

/** A killed replica started again on its own ports with its own env, ready. */
export async function restartReplica(r: Replica): Promise<Replica> {
  await killReplica(r);
  const again = startReplica(
    r.name,
    { http: r.httpPort, grpc: r.grpcPort, ...(r.enrollPort && { enroll: r.enrollPort }) },
    r.env,
  );
  try {
    await replicaReady(again);
  } catch (e) {
    await killReplica(again);
    throw e;
  }
  return again;
}

export interface Balancer {
  path: string;
  close(): Promise<void>;
}

/** Unix socket at `path`; each connection goes to the first of `ports()` that accepts. */
export async function startBalancer(path: string, ports: () => number[]): Promise<Balancer> {
  await rm(path, { force: true });
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const server: Server = createServer((client) => {
    track(client);
    const order = ports();
    const attempt = (i: number) => {
      const port = order[i];
      if (port === undefined) return void client.destroy();
      const up = connect(port, "127.0.0.1");
      let ok = false;
      up.once("connect", () => {
        ok = true;
        track(up);
        client.pipe(up);
        up.pipe(client);
        up.on("close", () => client.destroy());
        client.on("close", () => up.destroy());
      });
      up.once("error", () => {
        if (!ok) attempt(i + 1);
      });
    };
    attempt(0);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  return {
    path,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(path, { force: true });
    },
  };
}

/**
 * With mutual TLS agents enroll on the replicas' enrollment ports, which the agent finds at
 * its --server's port + 1 unless told (--enroll-server). This serves them at `addr:port`
 * inside `ns` (the namespace where the test already serves the agent port): socat there
 * over a balancer to `ports()`' enrollment listeners. A no-op (undefined) in plaintext mode.
 */
export async function serveEnrollment(
  lab: NetnsLab,
  ns: string,
  at: { addr: string; port: number; socket: string },
  replicas: () => Replica[],
): Promise<Balancer | undefined> {
  if (!replicas().some((r) => r.enrollPort)) return undefined;
  const balancer = await startBalancer(at.socket, () => replicas().map((r) => r.enrollPort));
  lab.background(ns, ["socat", `TCP-LISTEN:${at.port},bind=${at.addr},fork,reuseaddr`, `UNIX-CONNECT:${at.socket}`], {
    maxLifetimeMs: 15 * 60_000,
  });
  for (let i = 0; i < 100 && !(await lab.tcpConnect(ns, at.addr, at.port)); i++)
    await new Promise((r) => setTimeout(r, 100));
  return balancer;
}

export async function waitUntil<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
  stepMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ""}`,
      );
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
