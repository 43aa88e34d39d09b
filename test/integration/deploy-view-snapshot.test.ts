// A deployment and its targets are read as of one moment. A target's failure and its
// deployment's settle commit together (deploy/targets.ts); a GET that read the deployment
// and then its targets could land between and show a rolled-back target under a
// deployment still "running" (seen in the fleet-rollout kernel test). Here a writer flips
// both in one transaction, over and over, while readers check every answer.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { poolOf } from "../../src/api/db/client.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { validPolicy } from "../support/policies.ts";

let t: TestApp;
let depId: string;
before(async () => {
  t = await startTestApp({ queue: { prefix: `palisade-test:${process.pid}:snap`, lockMs: 15_000 } });
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "web" } })).statusCode, 201);
  assert.equal((await t.req("POST", "/v1/rulesets/web/versions", { body: { policy: validPolicy() } })).statusCode, 201);
  for (const name of ["snap-1", "snap-2"]) await t.db.host.create({ data: { name } });
  // No rollout worker runs here: the statuses below are written by the test alone.
  const res = await t.req("POST", "/v1/deployments", {
    as: "operator",
    body: { ruleset: "web", version: 1, selector: { hosts: ["snap-1", "snap-2"] } },
  });
  assert.equal(res.statusCode, 202, res.body);
  depId = (res.json() as { id: string }).id;
});
after(async () => {
  await t?.close();
});

/** One transaction: every target and the deployment move to the given pair of statuses. */
async function flip(target: "applying" | "rolled_back", deployment: "running" | "failed"): Promise<void> {
  const c = await poolOf(t.db).connect();
  try {
    await c.query("BEGIN");
    await c.query("UPDATE deployment_targets SET status = $1::target_status WHERE deployment_id = $2::uuid", [
      target,
      depId,
    ]);
    await c.query("UPDATE deployments SET status = $1::deployment_status WHERE id = $2::uuid", [deployment, depId]);
    await c.query("COMMIT");
  } finally {
    c.release();
  }
}

test("GET /v1/deployments/:id and the list never mix a deployment's status with its targets' from another moment", async () => {
  const FLIPS = 300;
  // The deployment starts "pending" with pending targets; the readers below only know
  // the two flipped moments, so the first flip commits before any of them reads.
  await flip("applying", "running");
  let writing = true;
  const writer = (async () => {
    try {
      for (let i = 0; i < FLIPS; i++) {
        await flip("applying", "running");
        await flip("rolled_back", "failed");
      }
    } finally {
      writing = false;
    }
  })();
  const mixed: string[] = [];
  let reads = 0;
  const reader = async () => {
    // Bounded: the writer ends after FLIPS rounds, and so does every reader.
    while (writing && reads < 20_000) {
      reads++;
      const d = (await t.req("GET", `/v1/deployments/${depId}`, { as: "viewer" })).json() as {
        status: string;
        counts: { applying: number; rolled_back: number };
        targets: { status: string }[];
      };
      const targets = d.targets.map((x) => x.status);
      const expected = d.status === "running" ? "applying" : "rolled_back";
      if (targets.some((s) => s !== expected)) mixed.push(`detail: ${d.status} with targets ${targets.join(",")}`);
      if (d.counts[expected] !== 2) mixed.push(`detail: ${d.status} with counts ${JSON.stringify(d.counts)}`);
      const list = (await t.req("GET", "/v1/deployments", { as: "viewer" })).json() as {
        items: { id: string; status: string; counts: { applying: number; rolled_back: number } }[];
      };
      const row = list.items.find((x) => x.id === depId)!;
      const want = row.status === "running" ? "applying" : "rolled_back";
      if (row.counts[want] !== 2) mixed.push(`list: ${row.status} with counts ${JSON.stringify(row.counts)}`);
    }
  };
  await Promise.all([writer, reader(), reader(), reader()]);
  assert.ok(reads > 50, `only ${reads} reads happened while the writer flipped; the test proved nothing`);
  assert.deepEqual(mixed.slice(0, 5), [], `${mixed.length} of ${reads} reads mixed two moments`);
});
