// A replica killed (SIGKILL) in the middle of a rollout: another replica takes the stalled
// job over and finishes it from what Postgres holds, and no target is sent twice.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { validPolicy } from "../support/policies.ts";
import { TEST_REDIS_URL } from "../support/db.ts";
import { startFleet, waitFor, type Fleet, type SimAgent } from "../support/grpc-fleet.ts";

const PROC = fileURLToPath(new URL("../support/bin/deploy-worker.ts", import.meta.url));
let f: Fleet;
const children: ChildProcess[] = [];

function worker(name: string): { child: ChildProcess; out: () => string } {
  const child = spawn(process.execPath, ["--import", "tsx", PROC], {
    env: {
      ...process.env,
      DATABASE_URL: f.t.database.url,
      REDIS_URL: TEST_REDIS_URL,
      PALISADE_QUEUE_PREFIX: f.prefix,
      PALISADE_DEPLOY_LOCK_MS: "3000",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  child.on("exit", (code, sig) => (out += `\n[${name} exited ${code ?? sig}]\n`));
  return { child, out: () => out };
}
const exited = (c: ChildProcess) =>
  new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", () => r())));

before(async () => {
  f = await startFleet();
  await f.t.req("POST", "/v1/rulesets", { body: { name: "resume" } });
  await f.t.req("POST", "/v1/rulesets/resume/versions", { body: { policy: validPolicy(22) } });
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, "SIGKILL");
  await Promise.all(children.map(exited));
  await f?.close();
});

test("SIGKILL of the replica running a rollout: another finishes it, nothing applied twice", async () => {
  const agents: SimAgent[] = [];
  for (let i = 0; i < 5; i++) agents.push(await f.agent(`resume-${i}`, { grp: "resume" }));
  // Batches: canary resume-0, then one host each. resume-2 holds its answer, so the rollout
  // is caught waiting on batch 2 when its replica dies.
  agents[2]!.answer = () => ({ status: "hold" });

  const a = worker("replica-a");
  await waitFor(() => a.out().includes("deploy worker ready"), 30_000, "replica A ready");
  const res = await f.t.req("POST", "/v1/deployments", {
    as: "operator",
    body: {
      ruleset: "resume",
      version: 1,
      selector: { labels: { grp: "resume" } },
      strategy: { canary: 1, batchSize: 1 },
    },
  });
  assert.equal(res.statusCode, 202, res.body);
  const id = (res.json() as { id: string }).id;
  await waitFor(() => agents[2]!.desired.length === 1, 30_000, "batch 2 sent");
  assert.match(a.out(), /"msg":"rollout started"/);
  process.kill(a.child.pid!, "SIGKILL");
  await exited(a.child);
  assert.equal(a.child.signalCode, "SIGKILL");

  const mid = await f.t.db.deploymentTarget.findMany({
    where: { deploymentId: id },
    include: { host: true },
    orderBy: { batch: "asc" },
  });
  assert.deepEqual(
    mid.map((t) => t.status),
    ["applied", "applied", "applying", "pending", "pending"],
  );

  // The held agent finishes its apply while no worker runs; its report still lands.
  agents[2]!.release();
  const b = worker("replica-b");
  await waitFor(
    async () => (await f.t.db.deployment.findUniqueOrThrow({ where: { id } })).status === "succeeded",
    60_000,
    "deployment finished by replica B",
    200,
  );
  assert.match(b.out(), /"msg":"rollout resumed"/, b.out());

  for (const ag of agents) assert.equal(ag.desired.length, 1, `${ag.name} received its DesiredState exactly once`);
  const targets = await f.t.db.deploymentTarget.findMany({ where: { deploymentId: id } });
  assert.ok(
    targets.every((t) => t.status === "applied" && t.attempts === 1),
    JSON.stringify(targets.map((t) => [t.status, t.attempts])),
  );
});
