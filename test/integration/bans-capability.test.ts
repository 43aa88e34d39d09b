// An agent without the `bans` capability (older than bans; the simulated agent reports
// features ["fib"]) gets no ban updates, on a change nor at its Hello, and the POST counts it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startFleet, type Fleet, type SimAgent } from "../support/grpc-fleet.ts";

let fleet: Fleet;
let sim: SimAgent;
before(async () => {
  fleet = await startFleet();
  sim = await fleet.agent("old-agent", { role: "old" });
});
after(async () => {
  sim?.close();
  await fleet?.close();
});

test("no ban update reaches an agent without the bans capability; the POST counts it as unsupported", async () => {
  const r = await fleet.t.req("POST", "/v1/bans", {
    as: "operator",
    body: { list: "edge", addresses: ["198.51.100.7"], ttlSeconds: 600, selector: { labels: { role: "old" } } },
  });
  assert.equal(r.statusCode, 201, r.body);
  const j = JSON.parse(r.body) as { unsupported: number; delivered: number; hosts: number };
  assert.equal(j.unsupported, 1);
  assert.equal(j.hosts, 1);
  // Its stream is up and got the notice, which it cannot act on: not delivered.
  assert.equal(j.delivered, 0, "a connected host without the capability is not counted as delivered");
  await sim.ping();
  await sim.connect();
  await sim.ping();
  assert.equal(
    sim.received.filter((m) => m.banUpdate).length,
    0,
    "no ban update, neither as a change nor at the Hello",
  );
});
