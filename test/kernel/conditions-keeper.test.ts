// The agent's ConditionKeeper on a real kernel (one namespace, the golden condition policy
// loaded): a full update sets exactly the names it lists (the others go off), a flip
// touches only its own set, a flip of a name the policy does not test is kept for later
// and changes nothing, and a flip whose remembered set names went stale (the table was
// removed behind the agent) reads them again instead of failing. Across a restart with the
// API unreachable, the values kept in the state dir survive the resync a rollback or drift
// repair runs, and without any kept values the kernel's sets are left alone.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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

test("a restart before the API is reachable keeps the values (state file), or the kernel's sets", async () => {
  const dir = mkdtempSync(join(tmpdir(), "palisade-cond-"));
  try {
    const file = join(dir, "conditions.json");
    const log = memoryLog("debug");
    const first = new ConditionKeeper({ netns: ns }, (fn) => fn(), log, file);
    assert.equal(await first.load(), false, "no file yet");
    await first.update({ full: true, values: [{ name: "web", on: true }] });
    await first.update({ full: false, values: [{ name: "maint_window", on: true }] });
    await first.saved();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), { on: ["maint_window", "web"] });

    // The restart: the kernel was reloaded by recovery (sets empty), no Hello yet; the
    // applier's afterChange hook resyncs.
    await lab.nft(ns, ["-f", "-"], GOLDEN);
    const second = new ConditionKeeper({ netns: ns }, (fn) => fn(), log, file);
    assert.equal(await second.load(), true);
    await second.resync();
    assert.ok(await on("condition_web"), "web kept on across the restart");
    assert.ok(await on("condition_maint_window"));

    // No file (a fresh or unreadable state dir) and no Hello: a resync leaves the sets as they are.
    writeFileSync(file, "{not json");
    const third = new ConditionKeeper({ netns: ns }, (fn) => fn(), log, file);
    assert.equal(await third.load(), false);
    await third.resync();
    assert.ok(await on("condition_web"), "no values known: nothing flushed");
    // A flip before the first full update touches its own set only and keeps no partial file.
    await third.update({ full: false, values: [{ name: "maint_window", on: false }] });
    assert.equal(await on("condition_maint_window"), false);
    assert.ok(await on("condition_web"));
    await third.saved();
    assert.equal(readFileSync(file, "utf8"), "{not json");
    // The first full update is the API's state: kept and applied.
    await third.update({ full: true, values: [] });
    await third.saved();
    assert.equal(await on("condition_web"), false);
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), { on: [] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
