// The drift detector on the Driver interface, on the in-memory FakeDriver (the kernel
// tests test/kernel/agent-drift*.test.ts prove the same against nft).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Applier } from "../../../src/agent/apply.ts";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import {
  DriftDetector,
  compare,
  dynamicSets,
  dynamicSetsOfTables,
  normalise,
  numericFile,
} from "../../../src/agent/drift.ts";
import { Outbox } from "../../../src/agent/outbox.ts";
import { recoverPending } from "../../../src/agent/recover.ts";
import { renderDesired } from "../../../src/agent/render.ts";
import { StateDir } from "../../../src/agent/state.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import { FakeDriver } from "../../support/fake-driver.ts";
import { fixtureDesired } from "../../support/agent-rulesets.ts";

const LAN = "10.9.0.0/24";

async function setup() {
  const kernel = new FakeDriver();
  const listings = { n: 0 };
  const snapshot = kernel.snapshot.bind(kernel);
  kernel.snapshot = () => {
    listings.n++;
    return snapshot();
  };
  const log = memoryLog("error");
  const applier = new Applier(kernel, log);
  const drift = new DriftDetector(kernel, applier, log);
  const desired = fixtureDesired({ lan: LAN });
  const out = await applier.safeApply({
    ...desired,
    confirmTimeoutMs: 1000,
    confirmed: async () => true,
    onConfirmed: () => drift.setDesired(desired.text),
  });
  assert.equal(out.status, "applied");
  return { kernel, applier, drift, listings, desired };
}

/** `desired` applied and confirmed on a new fake kernel, its drift baseline kept in `file`. */
async function appliedWithFile(file: string, desired: ReturnType<typeof fixtureDesired>) {
  const kernel = new FakeDriver();
  const log = memoryLog("error");
  const applier = new Applier(kernel, log);
  const drift = new DriftDetector(kernel, applier, log, file);
  const out = await applier.safeApply({
    ...desired,
    confirmTimeoutMs: 1000,
    confirmed: async () => true,
    onConfirmed: () => drift.setDesired(desired.text, desired.tables),
  });
  assert.equal(out.status, "applied");
  return { kernel, log, drift };
}

const counter = async (k: FakeDriver, name: string) =>
  (await k.readCounters("inet", "palisade")).find((c) => c.name === name)?.packets;

describe("drift on the Driver (fake)", () => {
  it("the kernel-filled sets read from the compiled tables are those read from the text", () => {
    // The README's policy with accounting, protections, a spaKnock rule and a port-scan trap:
    // sets with `flags dynamic` and with a timeout, beside static ones.
    const doc = parseYaml(readFileSync(join(import.meta.dirname, "../../../bench/fixtures/small.yaml"), "utf8"));
    doc.protections = {
      ...doc.protections,
      spaKnock: [{ name: "SSH", knockPort: 4000, port: 22, openSecret: "o", closeSecret: "c" }],
      portScanTrap: { ports: [139, 445] },
    };
    const r = renderDesired(JSON.stringify(doc), { apiAddresses: ["192.0.2.10"], apiPort: 50051 });
    assert.ok(r.ok);
    const fixture = fixtureDesired({ lan: LAN });
    for (const { text, tables } of [r, fixture]) {
      const fromText = [...dynamicSets(text)].sort();
      assert.ok(fromText.length > 0);
      assert.deepEqual([...dynamicSetsOfTables(tables)].sort(), fromText);
    }
    assert.ok(
      [...dynamicSets(r.text)].some((s) => s.includes("spa")),
      "the spaKnock sets (timeouts) are among them",
    );
    assert.ok(r.text.includes("flags dynamic"));
  });

  it("traffic (counters, elements of kernel-filled sets) is not drift", async () => {
    const { kernel, drift } = await setup();
    kernel.count("inet", "palisade", "udp_seen", 4, 400);
    kernel.hit("inet", "palisade", "acct_lan_src", "10.9.0.7", 4, 400);
    assert.deepEqual(await drift.check({ restore: true }), { drifted: false, details: "", restored: false });
  });

  it("a hand-added rule is reported; report-only leaves it, restore removes it and keeps counters", async () => {
    const { kernel, drift } = await setup();
    kernel.count("inet", "palisade", "udp_seen", 4, 400);
    await kernel.apply("add rule inet palisade input tcp dport 9 drop\n");
    const seen = await drift.check({ restore: false });
    assert.equal(seen.drifted, true);
    assert.equal(seen.restored, false);
    assert.match(seen.details, /rule inet palisade input/);
    assert.equal((await drift.check({ restore: false })).drifted, true, "still there");
    const fixed = await drift.check({ restore: true });
    assert.deepEqual([fixed.drifted, fixed.restored], [true, true]);
    assert.equal((await drift.check({ restore: false })).drifted, false);
    assert.equal(await counter(kernel, "udp_seen"), 4, "the repair is incremental: counters kept");
  });

  it("a ct helper object added by hand to a Palisade table is drift; restore deletes it", async () => {
    const { kernel, drift } = await setup();
    await kernel.apply('add ct helper inet palisade by_hand { type "ftp" protocol tcp ; }\n');
    const seen = await drift.check({ restore: true });
    assert.deepEqual([seen.drifted, seen.restored], [true, true]);
    assert.match(seen.details, /unexpected ct helper inet palisade by_hand/);
    const left = (await kernel.readTable("inet", "palisade")).ctHelpers.map((h) => h.name);
    assert.deepEqual(left, [], "the fixture declares no helper: restore left none");
    assert.equal((await drift.check({ restore: false })).drifted, false);
  });

  it("a baseline an older agent saved (no ct helpers in it) does not report the policy's own helpers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-drift-"));
    try {
      const file = join(dir, "drift-baseline.json");
      const desired = fixtureDesired({ lan: LAN, ctHelpers: [{ type: "ftp", protocol: "tcp", dport: 21 }] });
      const { kernel, log, drift } = await appliedWithFile(file, desired);
      assert.equal((await drift.check({ restore: false })).drifted, false);
      // What an agent before helpers were compared wrote: no helpers in the normalised state.
      const saved = JSON.parse(readFileSync(numericFile(file), "utf8"));
      assert.ok(Object.keys(saved.normalised.ctHelpers).some((k) => k.startsWith("ct helper ")));
      assert.ok(!Object.keys(saved.normalised.objects).some((k) => k.startsWith("ct helper ")), "apart");
      delete saved.normalised.ctHelpers;
      // Under the name and in the form that agent wrote (protocol names, no `protocols`).
      delete saved.protocols;
      writeFileSync(file, JSON.stringify(saved));
      rmSync(numericFile(file));
      const restarted = new DriftDetector(kernel, new Applier(kernel, log), log, file);
      assert.equal(await restarted.load(desired.text), true);
      assert.deepEqual(await restarted.check({ restore: true }), { drifted: false, details: "", restored: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a baseline read with numeric protocols is kept under its own name, which an older agent does not read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-drift-"));
    try {
      const file = join(dir, "drift-baseline.json");
      writeFileSync(file, JSON.stringify({ text: "stale", dynamic: [], normalised: { objects: {}, rules: {} } }));
      const desired = fixtureDesired({ lan: LAN });
      const { kernel, log } = await appliedWithFile(file, desired);
      assert.equal(JSON.parse(readFileSync(numericFile(file), "utf8")).protocols, "numeric");
      assert.ok(!existsSync(file), "the name an older agent reads holds no baseline now");
      const restarted = new DriftDetector(kernel, new Applier(kernel, log), log, file);
      assert.equal(await restarted.load(desired.text), true);
      assert.equal(restarted.current?.protocols, "numeric");
      // A commit that cannot be recorded puts back nothing: neither name is left.
      await restarted.revert(undefined);
      assert.ok(!existsSync(file) && !existsSync(numericFile(file)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a helper's protocol read as a number (no /etc/protocols) equals its name; its l3proto counts unless the table's", () => {
    const state = (protocol: string, l3proto?: string) => ({
      tables: [{ family: "inet" as const, name: "palisade" }],
      chains: [],
      rules: [],
      sets: [],
      counters: [],
      quotas: [],
      ctHelpers: [
        {
          family: "inet" as const,
          table: "palisade",
          name: "h",
          type: "ftp",
          protocol,
          ...(l3proto ? { l3proto } : {}),
        },
      ],
    });
    assert.deepEqual(compare(normalise(state("tcp"), new Set()), normalise(state("6"), new Set())), []);
    assert.deepEqual(compare(normalise(state("udp"), new Set()), normalise(state("17"), new Set())), []);
    assert.deepEqual(compare(normalise(state("tcp"), new Set()), normalise(state("17"), new Set())), [
      "changed ct helper inet palisade h",
    ]);
    // A baseline saved before l3proto was read equals a reading of the table's default.
    assert.deepEqual(compare(normalise(state("tcp"), new Set()), normalise(state("tcp", "inet"), new Set())), []);
    assert.deepEqual(compare(normalise(state("tcp", "inet"), new Set()), normalise(state("tcp", "ip"), new Set())), [
      "changed ct helper inet palisade h",
    ]);
  });

  it("an emptied chain is drift, and after drift the next apply lists the kernel instead of trusting it", async () => {
    const { kernel, applier, drift, listings, desired } = await setup();
    await kernel.apply("flush chain inet palisade input\n");
    const r = await drift.check({ restore: false });
    assert.equal(r.drifted, true);
    assert.match(r.details, /rule inet palisade input: 0 rules/);
    const before = listings.n;
    await applier.safeApply({ ...desired, confirmTimeoutMs: 1000, confirmed: async () => true });
    assert.equal(listings.n, before + 1, "drift forgot the known state");
  });

  it("without a baseline there is nothing to compare", async () => {
    const kernel = new FakeDriver();
    const log = memoryLog("error");
    const drift = new DriftDetector(kernel, new Applier(kernel, log), log);
    assert.deepEqual(await drift.check({ restore: true }), {
      drifted: false,
      details: "no desired state yet",
      restored: false,
    });
  });

  it("a first deploy killed after its baseline, before applied.json: recovery takes it out and no drift restore puts it back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-drift-"));
    try {
      const kernel = new FakeDriver(); // outlives the agent
      const log = memoryLog("error");
      const state = await StateDir.open(dir);
      const desired = fixtureDesired({ lan: LAN });
      const killed = new Promise<void>((stop) => {
        const applier = new Applier(kernel, log);
        const drift = new DriftDetector(kernel, applier, log, state.path("drift-baseline.json"));
        void applier.safeApply({
          ...desired,
          confirmTimeoutMs: 60_000,
          beforeApply: (snapshot) =>
            state.writePending({
              deploymentId: "d1",
              targetId: "t1",
              attempt: 1,
              version: { ruleset: "r", version: 1, checksum: "c" },
              snapshot,
              startedAt: new Date().toISOString(),
            }),
          confirmed: async () => true,
          onConfirmed: async () => {
            await drift.setDesired(desired.text, desired.tables);
            stop();
            await new Promise(() => {}); // the agent dies here: applied.json is never written
          },
        });
      });
      await killed;
      assert.equal(await state.readApplied(), undefined);
      assert.equal((await kernel.listTables()).length, 1, "the kernel holds the unconfirmed version");
      // The restart, in main.ts's order.
      const applier = new Applier(kernel, log);
      const drift = new DriftDetector(kernel, applier, log, state.path("drift-baseline.json"));
      assert.equal(await drift.load((await state.readApplied())?.text), false);
      const outbox = await Outbox.open(state.path("outbox.json"), () => false, log);
      assert.equal(await recoverPending({ state, applier, outbox, log }), "rolled_back");
      assert.equal((await kernel.listTables()).length, 0);
      assert.equal((await drift.check({ restore: true })).restored, false);
      assert.equal((await kernel.listTables()).length, 0, "the unconfirmed version stays out");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
