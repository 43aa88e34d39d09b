// Which kernel sets count as the policy's dynamic sets, and the text that lifts one element.
import assert from "node:assert/strict";
import { test } from "node:test";
import { dynamicSets } from "../../../src/engine/index.ts";

const shape = (name: string, flags = ["timeout"]) => ({
  family: "inet",
  table: "palisade",
  name,
  type: [name.endsWith("v6") || name.includes("_v6_") ? "ipv6_addr" : "ipv4_addr"],
  flags,
});
const writer = (name: string) => ({ expr: [{ set: { op: "update", elem: { payload: {} }, set: `@${name}` } }] });
const reader = (name: string) => ({ expr: [{ match: { op: "==", left: {}, right: `@${name}` } }] });

test("owners follow the compiler's names", () => {
  assert.equal(dynamicSets.ownerOf("recent_protect_portscan_v4"), "portScanTrap");
  assert.equal(dynamicSets.ownerOf("recent_protect_synflood_hc61_1s_v4_blocked"), "synFlood");
  assert.equal(dynamicSets.ownerOf("meter_protect_synflood_v6"), "synFlood");
  assert.equal(dynamicSets.ownerOf("recent_ssh_hc4_60s_v4_blocked"), "recent hitcount");
  assert.equal(dynamicSets.ownerOf("recent_ssh_hc4_60s_v6_2"), "recent hitcount");
  assert.equal(dynamicSets.ownerOf("recent_ssh_v4"), "recent");
  assert.equal(dynamicSets.ownerOf("meter_web_v4"), "meter");
  for (const n of ["office", "connlimit_input_rules_0_v4", "edge_h4", "recent_x", "bad name", "recent_x_v4; flush"])
    assert.equal(dynamicSets.ownerOf(n), undefined, n);
});

test("only timeout sets of the policy's table that a rule writes are dynamic", () => {
  const n = "recent_protect_portscan_v4";
  assert.ok(dynamicSets.isDynamicSet(shape(n), [reader(n), writer(n)]));
  assert.equal(dynamicSets.isDynamicSet(shape(n), [reader(n)]), false, "a set no rule writes (declared by the user)");
  assert.equal(dynamicSets.isDynamicSet(shape(n, []), [writer(n)]), false, "no timeout");
  assert.equal(dynamicSets.isDynamicSet({ ...shape(n), table: "palisade_bans" }, [writer(n)]), false);
  assert.equal(dynamicSets.isDynamicSet({ ...shape(n), type: ["ipv4_addr", "inet_service"] }, [writer(n)]), false);
  assert.equal(dynamicSets.isDynamicSet(shape("office"), [writer("office")]), false, "not a compiler name");
});

test("a lift names one address and is idempotent text", () => {
  assert.deepEqual(dynamicSets.checkLift("recent_protect_portscan_v4", "203.0.113.5"), {
    ok: true,
    address: "203.0.113.5",
    family: "ipv4",
  });
  const bad = dynamicSets.checkLift("office", "203.0.113.5");
  assert.equal(bad.ok || bad.error.code, "invalid_set_name");
  for (const a of ["10.0.0.0/8", "nope", "1.2.3.4 }", ""]) {
    const r = dynamicSets.checkLift("recent_ssh_v4", a);
    assert.equal(r.ok || r.error.code, "malformed_address", a);
  }
  assert.equal(
    dynamicSets.liftText("recent_ssh_v4", "203.0.113.5"),
    "add element inet palisade recent_ssh_v4 { 203.0.113.5 }\ndelete element inet palisade recent_ssh_v4 { 203.0.113.5 }\n",
  );
});
