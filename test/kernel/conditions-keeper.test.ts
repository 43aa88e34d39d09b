// The agent's ConditionKeeper on a real kernel (one namespace, the golden condition policy
// loaded): a full update sets exactly the names it lists (the others go off), a flip
// touches only its own set, a flip of a name the policy does not test is kept for later
// and changes nothing, and a flip whose remembered set names went stale (the table was
// removed behind the agent) reads them again instead of failing.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ConditionKeeper, type ConditionsApplied } from "../../src/agent/conditions.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { createLab, type NetnsLab } from "../support/netns.ts";

const GOLDEN = readFileSync(join(import.meta.dirname, "..", "golden", "condition.nft"), "utf8");
let lab: NetnsLab;
let ns: string;

before(async () => {
  lab = createLab();
  ns = await lab.addNamespace();
  await lab.nft(ns, ["-f", "-"], GOLDEN);
});
after(async () => {
  await lab?.cleanup();
});

const on = async (set: string) =>
  /elements = \{ ipv4, ipv6 \}/.test((await lab.nft(ns, ["list", "set", "inet", "palisade", set])).stdout);

test("full, flips, unknown names and stale set names", async () => {
  const log = memoryLog("debug");
  const k = new ConditionKeeper({ netns: ns }, (fn) => fn(), log);
  const applied: ConditionsApplied[] = [];
  k.onApplied = (r) => applied.push(r);

  await k.update({
    full: true,
    values: [
      { name: "web", on: true },
      { name: "maint_window", on: true },
    ],
  });
  assert.ok(await on("condition_web"));
  assert.ok(await on("condition_maint_window"));
  // A full update lists what is on now: maint_window is not listed, so it goes off.
  await k.update({ full: true, values: [{ name: "web", on: true }] });
  assert.ok(await on("condition_web"));
  assert.equal(await on("condition_maint_window"), false);
  // A flip touches its own set only.
  const r = await k.update({ full: false, values: [{ name: "web", on: false }] });
  assert.equal(r?.sets, 1);
  assert.equal(await on("condition_web"), false);
  // A name no rule tests: kept, nothing in the kernel to change.
  const later = await k.update({ full: false, values: [{ name: "later", on: true }] });
  assert.equal(later?.sets, 0);
  assert.deepEqual(k.values(), ["later"]);
  // The table goes behind the agent's back: the remembered names are stale, the flip reads
  // the kernel again (no set now) instead of failing; reloaded, the next full sync fills it.
  await lab.nft(ns, ["delete", "table", "inet", "palisade"]);
  const stale = await k.update({ full: false, values: [{ name: "web", on: true }] });
  assert.equal(stale?.sets, 0, "no condition set is left");
  assert.ok(!log.lines.some((l) => /not applied/.test(String(l.msg))), JSON.stringify(log.lines));
  await lab.nft(ns, ["-f", "-"], GOLDEN);
  await k.resync();
  assert.ok(await on("condition_web"));
  assert.equal(await on("condition_maint_window"), false);
  assert.ok(applied.length >= 6);
});
