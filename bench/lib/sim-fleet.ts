// The fleet benches' parts as separate processes: API replicas (`palisade server`, from
// test/support/fleet-processes.ts) on the bench's database and queue prefix, REST as admin
// on replica A, one-time enrollment of the simulated agents spread over the replicas, and
// the simulated-agent processes (bench/lib/*-agents.ts) reporting as JSON lines.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { TEST_REDIS_URL } from "../../test/support/db.ts";
import { startReplicas, type Replica } from "../../test/support/fleet-processes.ts";
import { restJson, type RestJson } from "../../test/support/rest-json.ts";

/** `n` replicas on `databaseUrl` with queue prefix `prefix`, each ready, and REST as admin on the first. */
export async function startBenchReplicas(
  n: number,
  databaseUrl: string,
  prefix: string,
): Promise<{ replicas: Replica[]; api: RestJson }> {
  const admin = `bench-admin-${randomBytes(12).toString("hex")}`;
  const replicas = await startReplicas(n, {
    DATABASE_URL: databaseUrl,
    REDIS_URL: TEST_REDIS_URL,
    PALISADE_ADMIN_TOKEN: admin,
    PALISADE_QUEUE_PREFIX: prefix,
    // These benches measure the plaintext channel (their agents enroll with bearer
    // credentials); bench/mtls-procs.ts compares mutual TLS with it.
    PALISADE_GRPC_PLAINTEXT: "1",
  });
  return { replicas, api: restJson(replicas[0]!.url, admin) };
}

export interface AgentSpec {
  name: string;
  token: string;
  /** The replica's gRPC address: agent i on replica i % replicas. */
  address: string;
}

/**
 * One-time tokens for `count` agents named `fan-NNNN`, 16 requests at a time. Every agent
 * is labelled fan=all; agent 0 also baseline=yes (the one-host baseline's selector).
 */
export async function enrollAgents(api: RestJson, replicas: Replica[], count: number): Promise<AgentSpec[]> {
  const specs: AgentSpec[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < count; i = next++) {
        const labels = { fan: "all", ...(i === 0 && { baseline: "yes" }) };
        const t = await api("POST", "/v1/enrollment-tokens", { labels, ttlSeconds: 3600 });
        if (t.status !== 201) throw new Error(`enrollment token: ${t.status} ${JSON.stringify(t.json)}`);
        specs[i] = {
          name: `fan-${String(i).padStart(4, "0")}`,
          token: String(t.json.token),
          address: `127.0.0.1:${replicas[i % replicas.length]!.grpcPort}`,
        };
      }
    }),
  );
  return specs;
}

export interface AgentProcess {
  child: ChildProcess;
  /** The agents it connected, once its `ready` line came. */
  ready: Promise<{ name: string; hostId: string }[]>;
  /** Its stderr so far. */
  out: string;
}

/**
 * `procs` processes of `script` (a bench/lib/*-agents.ts), each given its share of `specs`
 * (round robin) on stdin; every stdout line goes to `onLine` parsed. Pushed to `into` as
 * they start, so the caller's cleanup reaches them even when a later one fails.
 */
export function spawnAgentProcesses(
  script: string,
  specs: AgentSpec[],
  procs: number,
  onLine: (m: Record<string, any>) => void,
  into: AgentProcess[],
): void {
  for (let p = 0; p < procs; p++) {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, script)], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const proc: AgentProcess = { child, out: "", ready: undefined as never };
    child.stderr!.on("data", (b: Buffer) => (proc.out += b.toString()));
    proc.ready = new Promise((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`agent process ${p} exited ${code}: ${proc.out.slice(-2000)}`)));
      createInterface({ input: child.stdout! }).on("line", (l) => {
        const m = JSON.parse(l) as Record<string, any>;
        if (m.ready) resolve(m.ready);
        onLine(m);
      });
    });
    child.stdin!.write(JSON.stringify({ agents: specs.filter((_, i) => i % procs === p) }) + "\n");
    into.push(proc);
  }
}

/** End the processes' input (they exit on it); any still running 5 s later is killed. */
export function stopAgentProcesses(procs: AgentProcess[]): void {
  for (const p of procs) p.child.stdin?.end();
  for (const p of procs)
    if (p.child.exitCode === null && p.child.pid)
      setTimeout(() => p.child.exitCode === null && p.child.kill("SIGKILL"), 5_000).unref();
}
