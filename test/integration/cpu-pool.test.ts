// The CPU pool behind validate/diff/render/YAML bodies, through the API: a full queue is
// refused at once with 503 busy and Retry-After, a task past its time limit is stopped
// with 413 and its worker replaced, and a YAML body whose aliases expand too far is 413
// naming the limit. Nothing is written by a refused request.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { MAX_YAML_ALIAS_EXPANSION } from "../../src/engine/index.ts";
import { errorOf, startTestApp, type TestApp } from "../support/app.ts";
import { validPolicy } from "../support/policies.ts";
import { waitFor } from "../support/grpc-fleet.ts";

/** One anchor of `ports` ports used by `uses` aliases: small as text, large when expanded. */
function amplifiedYaml(ports: number, uses: number): string {
  let doc = `sets:\n  base:\n    type: inet_service\n    elements: &p [${Array.from({ length: ports }, (_, i) => 1 + (i % 65535)).join(", ")}]\n`;
  for (let i = 0; i < uses; i++) doc += `  s${i}:\n    type: inet_service\n    elements: *p\n`;
  return doc;
}
const yaml = { "content-type": "application/yaml" };

let t: TestApp;
before(async () => {
  // No queue: while one task runs, the next is refused.
  t = await startTestApp({}, { cpuPool: { workers: 1, queueLimit: 0 } });
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "pool" } })).statusCode, 201);
});
after(async () => {
  await t?.close();
});

test("a YAML body whose aliases add more than the limit is refused with 413 naming it, and nothing is stored", async () => {
  const res = await t.req("POST", "/v1/rulesets/pool/versions", { body: amplifiedYaml(20_000, 20), headers: yaml });
  assert.equal(res.statusCode, 413, res.body);
  const e = errorOf(res);
  assert.equal(e.code, "payload_too_large");
  assert.match(e.message, new RegExp(`aliases may add at most ${MAX_YAML_ALIAS_EXPANSION} nodes`));
  assert.deepEqual(
    e.details.map((d) => d.code),
    ["alias_expansion_too_large"],
  );
  assert.equal(await t.db.rulesetVersion.count(), 0);
  // The same aliases within the limit are fine.
  const ok = await t.req("POST", "/v1/validate", { body: amplifiedYaml(1_000, 20), headers: yaml });
  assert.equal(ok.statusCode, 200, ok.body);
});

test("when the pool's queue is full a request is refused at once with 503 busy and Retry-After", async () => {
  const slow = t.req("POST", "/v1/validate", { body: amplifiedYaml(300_000, 0), headers: yaml });
  await waitFor(() => t.app.cpu.running === 1, 30_000, "the slow request to occupy the worker", 5);
  const refused = await t.req("GET", "/v1/rulesets/pool/diff?from=1&to=1");
  const busy = await t.req("POST", "/v1/validate", { body: { policy: validPolicy() } });
  assert.equal(t.app.cpu.running, 1, "the slow request was still running when the others were refused");
  assert.equal(busy.statusCode, 503, busy.body);
  assert.equal(errorOf(busy).code, "busy");
  assert.equal(busy.headers["retry-after"], "2");
  assert.equal(refused.statusCode, 404, "a diff of a ruleset without versions never reaches the pool");
  assert.equal((await slow).statusCode, 200);
  // Free again: the next one runs.
  assert.equal((await t.req("POST", "/v1/validate", { body: { policy: validPolicy() } })).statusCode, 200);
});

test("a request that waits longer than the queue's time limit is refused with 503 busy", async () => {
  const waiting = await startTestApp({}, { cpuPool: { workers: 1, queueLimit: 4, queueTimeoutMs: 200 } });
  try {
    const slow = waiting.req("POST", "/v1/validate", { body: amplifiedYaml(300_000, 0), headers: yaml });
    await waitFor(() => waiting.app.cpu.running === 1, 30_000, "the slow request to occupy the worker", 5);
    const res = await waiting.req("POST", "/v1/validate", { body: { policy: validPolicy() } });
    assert.equal(res.statusCode, 503, res.body);
    assert.match(errorOf(res).message, /waited 0.2 s/);
    assert.equal(res.headers["retry-after"], "2");
    assert.equal(waiting.app.cpu.queued, 0, "the refused request left the queue");
    assert.equal((await slow).statusCode, 200);
  } finally {
    await waiting.close();
  }
});

test("a task that runs out of the worker's heap is stopped with 413 and the next one runs", async () => {
  const small = await startTestApp({}, { cpuPool: { workers: 1, maxHeapMb: 64 } });
  try {
    const res = await small.req("POST", "/v1/validate", { body: amplifiedYaml(700_000, 0), headers: yaml });
    assert.equal(res.statusCode, 413, res.body);
    assert.match(errorOf(res).message, /needed more than 64 MiB of memory and was stopped/);
    assert.equal((await small.req("POST", "/v1/validate", { body: "chains: {}\n", headers: yaml })).statusCode, 200);
  } finally {
    await small.close();
  }
});

test("a task past the time limit is stopped with 413 and its worker replaced", async () => {
  const quick = await startTestApp({}, { cpuPool: { workers: 1, taskTimeoutMs: 300 } });
  try {
    const res = await quick.req("POST", "/v1/validate", { body: amplifiedYaml(600_000, 1), headers: yaml });
    assert.equal(res.statusCode, 413, res.body);
    assert.match(errorOf(res).message, /needed more than 0.3 s of work and was stopped/);
    assert.equal(quick.app.cpu.running, 0);
    // A fresh worker takes the next task (its start-up does not count against the limit).
    const next = await quick.req("POST", "/v1/validate", { body: "chains: {}\n", headers: yaml });
    assert.equal(next.statusCode, 200, next.body);
  } finally {
    await quick.close();
  }
});
