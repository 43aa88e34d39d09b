// The agent's render worker (src/agent/policy-worker.ts): a render and a policy's facts
// through the worker thread equal the same functions run in place (the compiled tables
// survive the message), one worker serves back-to-back requests and is gone once idle,
// a request the worker never answered fails instead of hanging, and an apply whose render
// fails that way is reported FAILED.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { POLICY_WORKER_HEAP_MB, PolicyWorker } from "../../../src/agent/policy-worker.ts";
import { policyFacts, renderDesired } from "../../../src/agent/render.ts";
import { StateDir } from "../../../src/agent/state.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import { applyOnce } from "../../support/apply-once.ts";

const ROOT = join(import.meta.dirname, "../../..");
const failsafe = { apiAddresses: ["192.0.2.10"], apiPort: 50051 };
// The README's policy, with a spaKnock rule and a sharing port-scan trap added.
const doc = parseYaml(readFileSync(join(ROOT, "bench/fixtures/small.yaml"), "utf8")) as {
  protections?: Record<string, unknown>;
};
doc.protections = {
  ...doc.protections,
  spaKnock: [{ name: "SSH", knockPort: 4000, port: 22, openSecret: "open-s", closeSecret: "close-s" }],
  portScanTrap: { ports: [139, 445], share: { list: "scanners" } },
};
const policy = JSON.stringify(doc);

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 600 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(cond(), "condition not reached in 30 s");
}

test("a render and a policy's facts through the worker equal them run in place; one worker serves both, then stops", async () => {
  const w = new PolicyWorker(undefined, 100);
  try {
    const inPlace = renderDesired(policy, failsafe);
    assert.ok(inPlace.ok);
    const facts = await w.factsOf(policy);
    const rendered = await w.render(policy, failsafe);
    assert.deepEqual(rendered, inPlace);
    assert.deepEqual(facts, policyFacts(policy));
    assert.deepEqual(facts.spa, [{ name: "SSH", openSecret: "open-s", closeSecret: "close-s" }]);
    assert.equal(facts.trapShare?.list, "scanners");
    assert.equal(w.started, 1, "the facts and the render of one apply share a worker");
    await until(() => !w.running);
    // Known facts need no worker; a render starts a new one.
    assert.deepEqual(await w.factsOf(policy), facts);
    assert.equal(w.started, 1);
    const invalid = await w.render(JSON.stringify({ chains: { x: { hook: "nope" } } }), failsafe);
    assert.equal(invalid.ok, false);
    assert.equal(!invalid.ok && invalid.code, "invalid_policy");
    assert.equal(w.started, 2);
  } finally {
    await w.close();
  }
});

test("a request the worker never answered fails; the apply is reported FAILED (render_failed)", async () => {
  const w = new PolicyWorker();
  const pending = w.render(policy, failsafe);
  await w.close();
  await assert.rejects(pending, /render worker stopped/);

  const dir = await mkdtemp(join(tmpdir(), "palisade-policy-worker-"));
  try {
    const { results, kernel } = await applyOnce(new StateDir(dir), policy, {
      failsafe: async () => failsafe,
      render: (json, fs) => {
        const stopped = new PolicyWorker();
        const r = stopped.render(json, fs);
        void stopped.close();
        return r;
      },
    });
    assert.deepEqual(
      results.map((r) => [r.status, r.error.split(":")[0]]),
      [["APPLY_STATUS_FAILED", "render_failed"]],
    );
    assert.deepEqual(await kernel.listTables(), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** One ipv4 set of `n` addresses (11.0.0.0 up) and `rules` linear drop rules: JSON. */
function bigPolicy(n: number, rules: number): string {
  const addr = (i: number) => `11.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
  const elements = Array.from({ length: n }, (_, i) => addr(i));
  const list = Array.from({ length: rules }, (_, i) => ({ match: { saddr: addr(i) }, action: "drop" }));
  return JSON.stringify({
    sets: { blocklist: { type: "ipv4_addr", elements } },
    chains: {
      input: {
        hook: "input",
        policy: "accept",
        rules: [{ match: { saddr: "@blocklist" }, action: "drop" }, ...list],
      },
    },
  });
}

test("the worker's heap is capped: a 65k-address, 10k-rule policy renders under the default cap", async () => {
  const w = new PolicyWorker(undefined, 100);
  try {
    const r = await w.render(bigPolicy(65_536, 10_000), failsafe);
    assert.equal(r.ok, true);
  } finally {
    await w.close();
  }
  assert.ok(POLICY_WORKER_HEAP_MB >= 64, "room above the measured 24 MB (built) / 32 MB (sources)");
});

test("a render that runs out of the worker's heap fails with a clear error; the agent renders the next one", async () => {
  // 48 MB: the README's policy renders (from the sources too); 340k addresses do not.
  const w = new PolicyWorker(undefined, 100, 48);
  // The worker is unref'd (it never holds a stopping agent) and a dying one holds nothing:
  // the agent's stream keeps its loop alive, this keeps the test's.
  const alive = setInterval(() => undefined, 1000);
  const huge = bigPolicy(340_000, 10_000);
  try {
    await assert.rejects(w.render(huge, failsafe), /render worker stopped: out of heap \(.*48 MB\)/);
    assert.equal((await w.render(policy, failsafe)).ok, true, "a new worker renders the next policy");
  } finally {
    await w.close();
  }
  const dir = await mkdtemp(join(tmpdir(), "palisade-policy-worker-"));
  try {
    const { results, kernel } = await applyOnce(new StateDir(dir), huge, {
      failsafe: async () => failsafe,
      render: (json, fs) => w.render(json, fs),
    });
    assert.deepEqual(
      results.map((r) => [r.status, r.error.split(":")[0]]),
      [["APPLY_STATUS_FAILED", "render_failed"]],
    );
    assert.match(results[0]!.error, /out of heap/);
    assert.deepEqual(await kernel.listTables(), []);
  } finally {
    await w.close();
    await rm(dir, { recursive: true, force: true });
    clearInterval(alive);
  }
});

test("the facts of a policy that does not validate for nftables say so, and the worker logs it as JSON with the version", async () => {
  // A version stored before the engine refused it: a user set named like a geoip country
  // set (the agent would fill it with that country's ranges) beside a sharing trap.
  const stale = structuredClone(doc) as { sets?: Record<string, unknown> };
  stale.sets = { ...stale.sets, geo_v4_CN: { type: "ipv4_addr", elements: ["198.51.100.1"] } };
  const json = JSON.stringify(stale);
  const inPlace = policyFacts(json);
  assert.equal(inPlace.trapShare, undefined);
  assert.deepEqual(inPlace.invalid?.codes, ["set_name_reserved"]);
  assert.match(inPlace.invalid?.error ?? "", /geoip match's set for CN/);
  assert.deepEqual(inPlace.spa, [{ name: "SSH", openSecret: "open-s", closeSecret: "close-s" }]);
  assert.deepEqual(policyFacts("{").invalid?.codes, ["invalid_json"]);
  const log = memoryLog();
  const w = new PolicyWorker(log, 100);
  try {
    assert.deepEqual(await w.factsOf(json, { ruleset: "web", version: 7 }), inPlace);
    const line = log.lines.find(
      (l) => l.msg === "the policy does not validate for nftables: no port-scan trap sharing from it",
    );
    assert.ok(line, JSON.stringify(log.lines));
    assert.equal(line.level, 40);
    assert.equal(line.ruleset, "web");
    assert.equal(line.version, 7);
    assert.deepEqual(line.codes, ["set_name_reserved"]);
  } finally {
    await w.close();
  }
});
