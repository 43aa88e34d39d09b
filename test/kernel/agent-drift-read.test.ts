// How the drift detector reads the kernel, against nft in a namespace: the elements of
// kernel-filled sets (accounting, timeouts) are never read, while a static set's still are;
// a foreign table of the same family stays out of the reading; and a host that loses (or
// gains) /etc/protocols after an apply does not see its own rules as drift.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { Applier } from "../../src/agent/apply.ts";
import { DriftDetector, dynamicSets, normalise, numericFile } from "../../src/agent/drift.ts";
import { readForDrift, readPalisade } from "../../src/agent/kernel/read.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { nftDriver } from "../../src/engine/driver/index.ts";
import { fixtureText } from "../support/agent-rulesets.ts";

const LAN = "10.9.0.0/24";
// The fixture's accounting sets (flags dynamic) and a static interval set beside them.
const TEXT = `${fixtureText({ lan: LAN })}
add set inet palisade allow { type ipv4_addr ; flags interval ; elements = { 192.0.2.0/24 } ; }
add rule inet palisade input ip saddr @allow meta l4proto { tcp, udp } counter accept
`;

async function applied(ns: string, file?: string) {
  const log = memoryLog("error");
  const applier = new Applier(nftDriver({ netns: ns }), log);
  const drift = new DriftDetector(applier.driver, applier, log, file);
  const r = await applier.safeApply({
    text: TEXT,
    confirmTimeoutMs: 1000,
    confirmed: async () => true,
    onConfirmed: () => drift.setDesired(TEXT),
  });
  assert.equal(r.status, "applied");
  return { applier, drift, log };
}

describe("agent drift reads (kernel, netns)", () => {
  let lab: NetnsLab;
  const clean = { drifted: false, details: "", restored: false };

  before(() => {
    lab = createLab();
  });
  after(async () => {
    await lab.cleanup();
  });

  it("reads no element of a kernel-filled set, still reads a static set's, and leaves foreign tables out", async () => {
    const ns = await lab.addNamespace();
    const { applier, drift } = await applied(ns);
    const dyn = dynamicSets(TEXT);
    assert.deepEqual([...dyn].sort(), ["inet palisade set acct_lan_dst", "inet palisade set acct_lan_src"]);
    // Addresses the kernel would have added, and a foreign table of the same family.
    const addrs = Array.from({ length: 200 }, (_, i) => `10.9.0.${i + 1}`).join(", ");
    await lab.nft(ns, ["-f", "-"], `add element inet palisade acct_lan_src { ${addrs} }\n`);
    await lab.nft(
      ns,
      ["-f", "-"],
      "add table inet other\nadd set inet other s { type ipv4_addr ; elements = { 198.51.100.1 } ; }\nadd chain inet other c\nadd rule inet other c tcp dport 22 drop\n",
    );

    const full = await readPalisade(applier.driver);
    const terse = await readForDrift(applier.driver, { dynamic: dyn });
    const set = (st: typeof full, name: string) => st.sets.find((s) => s.name === name);
    assert.equal(set(full, "acct_lan_src")?.elements.length, 200);
    assert.equal(set(terse, "acct_lan_src")?.elements.length, 0, "the kernel-filled set's elements are not read");
    assert.deepEqual(set(terse, "allow")?.elements, set(full, "allow")?.elements);
    assert.equal(set(terse, "allow")?.elements.length, 1);
    assert.ok(!terse.tables.some((t) => t.name === "other") && !terse.rules.some((r) => r.table === "other"));
    // What drift compares is the same either way.
    assert.deepEqual(normalise(terse, dyn), normalise(full, dyn));
    assert.deepEqual(await drift.check({ restore: true }), clean);

    // A static set edited by hand is still seen, and restored; neither the check nor the
    // restore's plan reads a whole table (its elements), nor lists the tables.
    await lab.nft(ns, ["add", "element", "inet", "palisade", "allow", "{ 203.0.113.7 }"]);
    const whole: string[] = [];
    const d = applier.driver;
    const [readTable, listTables] = [d.readTable, d.listTables];
    d.readTable = (...a) => (whole.push(`readTable ${a[1]}`), readTable(...a));
    d.listTables = () => (whole.push("listTables"), listTables());
    const r = await drift.check({ restore: true });
    [d.readTable, d.listTables] = [readTable, listTables];
    assert.deepEqual(whole, []);
    assert.equal(r.drifted, true);
    assert.match(r.details, /changed set inet palisade allow/);
    assert.equal(r.restored, true);
    assert.doesNotMatch((await lab.nft(ns, ["list", "set", "inet", "palisade", "allow"])).stdout, /203\.0\.113\.7/);
    assert.deepEqual(await drift.check({ restore: false }), clean);
  });

  it("/etc/protocols removed after the apply is not drift; an older agent's baseline (names) saw it as drift", async () => {
    const ns = await lab.addNamespace();
    const dir = mkdtempSync(join(tmpdir(), "palisade-drift-read-"));
    try {
      const file = join(dir, "drift-baseline.json");
      const { applier, drift, log } = await applied(ns, file);
      const saved = JSON.parse(readFileSync(numericFile(file), "utf8"));
      assert.equal(saved.protocols, "numeric");
      // The baseline an older agent wrote: the same reading, protocols by name.
      const dyn = dynamicSets(TEXT);
      const names = normalise(await readForDrift(applier.driver, { dynamic: dyn }), dyn);
      assert.notDeepEqual(names, saved.normalised, "the two readings differ (udp vs 17), or this test proves nothing");
      const oldFile = join(dir, "old-baseline.json");
      writeFileSync(oldFile, JSON.stringify({ text: TEXT, dynamic: saved.dynamic, normalised: names }));
      const older = new DriftDetector(applier.driver, applier, log, oldFile);
      assert.equal(await older.load(TEXT), true);
      assert.deepEqual(await older.check({ restore: false }), clean);

      lab.etcFile(ns, "protocols", ""); // netbase removed: nft prints "meta l4proto 17"
      assert.match((await lab.nft(ns, ["list", "chain", "inet", "palisade", "input"])).stdout, /l4proto 17/);
      assert.deepEqual(await drift.check({ restore: false }), clean);
      const restarted = new DriftDetector(applier.driver, applier, log, file);
      assert.equal(await restarted.load(TEXT), true);
      assert.deepEqual(await restarted.check({ restore: false }), clean);
      const old = await older.check({ restore: false });
      assert.equal(old.drifted, true);
      assert.match(old.details, /rule inet palisade input: rule \d+ differs/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
