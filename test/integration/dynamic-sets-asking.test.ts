// Reading a host's dynamic sets makes its agent list its whole table, and any viewer may
// ask. Through the real API, a real replica, real Redis and a simulated agent on a real gRPC
// stream: identical reads share one question and a short cache, one host is asked at most
// once per READ_GAP_MS, a ninth waiting read is refused with 429, a lift is never served from
// the cache and clears it, and a lift the agent leaves unanswered is still audited.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { READ_GAP_MS, READ_QUEUE_MAX } from "../../src/api/dynamic-sets/index.ts";
import { startFleet, type Fleet, type SimAgent } from "../support/grpc-fleet.ts";

let fleet: Fleet;
let sim: SimAgent;
/** When each question reached the agent (ms), and what it asked. */
const questions: { at: number; limit: number; deleteSet: string }[] = [];
let answering = true;

before(async () => {
  fleet = await startFleet();
  sim = await fleet.agent("ask-edge", {}, { connect: false });
  sim.helloFeatures = ["fib", "dynamic_sets"];
  sim.onServerMessage = (m) => {
    const q = m.dynamicSets;
    if (!q) return;
    questions.push({ at: Date.now(), limit: q.limit, deleteSet: q.deleteSet });
    if (!answering) return;
    const sets = q.deleteSet
      ? []
      : [
          {
            name: "recent_protect_portscan_v4",
            type: "ipv4_addr",
            timeoutMs: "600000",
            size: 65535,
            owner: "portScanTrap",
            rules: ["trap"],
            elements: [{ address: "198.51.100.9", timeoutMs: "600000", expiresMs: "500000" }],
            total: 1,
          },
        ];
    // A little later, as a real agent's `nft -j` read would be.
    setTimeout(() => sim.send({ dynamicSets: { requestId: q.requestId, sets, errorCode: "", error: "" } }), 50);
  };
  await sim.connect();
});
after(async () => {
  sim?.close();
  await fleet?.close();
});

const get = (limit?: number) =>
  fleet.t.req("GET", `/v1/hosts/ask-edge/dynamic-sets${limit ? `?limit=${limit}` : ""}`, { as: "viewer" });

test("identical reads share one question and a cache; the answer keeps its read time", async () => {
  questions.length = 0;
  const all = await Promise.all(Array.from({ length: 10 }, () => get()));
  for (const r of all) assert.equal(r.statusCode, 200, r.body);
  assert.equal(questions.length, 1, "ten concurrent reads, one question to the agent");
  const again = await get();
  assert.equal(again.statusCode, 200, again.body);
  assert.equal(questions.length, 1, "a read right after is served from the cache");
  assert.equal(again.json().readAt, all[0]!.json().readAt, "the cached answer says when the kernel was read");
  assert.equal(again.json().sets[0].elements[0].address, "198.51.100.9");
});

test("one host is asked at most once per gap; a read past the queue's limit is refused with 429", async () => {
  questions.length = 0;
  // Distinct limits: nothing to share, so each one is a question of its own.
  const n = READ_QUEUE_MAX + 4;
  const all = await Promise.all(Array.from({ length: n }, (_, i) => get(100 + i)));
  const ok = all.filter((r) => r.statusCode === 200);
  const refused = all.filter((r) => r.statusCode === 429);
  assert.equal(ok.length + refused.length, n, all.map((r) => `${r.statusCode} ${r.body}`).join("\n"));
  assert.ok(refused.length >= 1, "reads past the queue's limit are refused");
  assert.ok(ok.length >= READ_QUEUE_MAX && ok.length <= READ_QUEUE_MAX + 1, `${ok.length} answered`);
  for (const r of refused) {
    assert.equal(r.json().error.code, "rate_limited");
    assert.match(r.json().error.message, /ask-edge/);
    assert.ok(Number(r.headers["retry-after"]) > 0, "Retry-After says when");
  }
  assert.equal(questions.length, ok.length, "each answered read was one question; refused ones asked nothing");
  // Lower bounds only (the pacing's promise). The times are taken where the agent receives,
  // after Redis and the gRPC stream, whose delay varies from one question to the next on a
  // loaded machine (a CI run saw 973 ms): each gap may lose some of that, the span over all
  // of them only what the first and the last lost. Without pacing they would all come at once.
  const gaps = questions.slice(1).map((q, i) => q.at - questions[i]!.at);
  for (const g of gaps) assert.ok(g >= READ_GAP_MS / 2, `questions ${g} ms apart`);
  const span = questions.at(-1)!.at - questions[0]!.at;
  assert.ok(span >= (questions.length - 1) * READ_GAP_MS - 250, `${questions.length} questions over ${span} ms`);
});

test("a lift is never served from the cache and clears it", async () => {
  await new Promise((r) => setTimeout(r, READ_GAP_MS));
  questions.length = 0;
  assert.equal((await get(7)).statusCode, 200);
  const lift = await fleet.t.req(
    "DELETE",
    "/v1/hosts/ask-edge/dynamic-sets/recent_protect_portscan_v4/elements/198.51.100.9",
    {
      as: "operator",
    },
  );
  assert.equal(lift.statusCode, 200, lift.body);
  assert.equal((await get(7)).statusCode, 200);
  assert.deepEqual(
    questions.map((q) => q.deleteSet || `read ${q.limit}`),
    ["read 7", "recent_protect_portscan_v4", "read 7"],
    "the read after the lift asked the agent again",
  );
  const audit = await fleet.t.db.auditLog.findMany({ where: { action: "dynamic_set.lift" } });
  assert.equal(audit.length, 1);
  assert.equal((audit[0]!.details as { outcome: string }).outcome, "lifted");
});

test("a lift the agent leaves unanswered is 504 and still audited as unknown", { timeout: 30_000 }, async () => {
  answering = false;
  try {
    const lift = await fleet.t.req(
      "DELETE",
      "/v1/hosts/ask-edge/dynamic-sets/recent_protect_portscan_v4/elements/198.51.100.10",
      {
        as: "operator",
      },
    );
    assert.equal(lift.statusCode, 504, lift.body);
    assert.equal(lift.json().error.code, "agent_timeout");
  } finally {
    answering = true;
  }
  const audit = await fleet.t.db.auditLog.findMany({
    where: { action: "dynamic_set.lift" },
    orderBy: { at: "asc" },
  });
  assert.equal(audit.length, 2, "the unanswered lift is on record");
  assert.deepEqual(audit[1]!.details, {
    hostId: sim.hostId,
    set: "recent_protect_portscan_v4",
    address: "198.51.100.10",
    outcome: "unknown",
  });
});
