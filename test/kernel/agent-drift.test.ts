// Drift against a real kernel in a namespace: traffic (counters, accounting elements,
// quota usage) is not drift; a hand edit is, and it is restored without resetting state.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { Applier } from "../../src/agent/apply.ts";
import { DriftDetector } from "../../src/agent/drift.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { readCounter, nftDriver } from "../../src/engine/driver/index.ts";
import { fixtureText } from "../support/agent-rulesets.ts";

describe("agent drift (kernel, netns)", () => {
  let lab: NetnsLab;
  let ns: string;
  let peer: string;
  let dst: string;
  let lan: string;
  let applier: Applier;
  let drift: DriftDetector;

  before(async () => {
    lab = createLab();
    ({ ns, peer, dst, lan } = await lab.pairWithLan());
    const log = memoryLog();
    applier = new Applier(nftDriver({ netns: ns }), log);
    drift = new DriftDetector(applier.driver, applier, log);
    const text = fixtureText({ lan });
    const r = await applier.safeApply({ text, confirmTimeoutMs: 1000, confirmed: async () => true });
    assert.equal(r.status, "applied");
    await drift.setDesired(text);
  });
  after(async () => {
    await lab.cleanup();
  });

  it("traffic and foreign tables are not drift", async () => {
    await lab.sendUdp(peer, dst, 5000, { count: 5, size: 50 });
    await lab.nft(ns, ["add", "table", "ip", "someone_else"]);
    const r = await drift.check({ restore: true });
    assert.deepEqual(r, { drifted: false, details: "", restored: false });
  });

  it("a hand-added rule and a deleted counter rule are reported and restored; counters keep their values", async () => {
    const before = await readCounter("inet", "palisade", "udp_seen", { netns: ns });
    assert.equal(before.packets, 5);
    await lab.nft(ns, ["add", "rule", "inet", "palisade", "input", "tcp", "dport", "22", "drop"]);
    const report = await drift.check({ restore: true });
    assert.equal(report.drifted, true);
    assert.equal(report.restored, true);
    assert.match(report.details, /rule inet palisade input/);
    assert.match(report.details, /tcp|22|dport/);
    const listing = (await lab.nft(ns, ["list", "chain", "inet", "palisade", "input"])).stdout;
    assert.doesNotMatch(listing, /dport 22 drop/);
    assert.deepEqual(await drift.check({ restore: false }), { drifted: false, details: "", restored: false });
    const after = await readCounter("inet", "palisade", "udp_seen", { netns: ns });
    assert.equal(after.packets, before.packets);
    // The foreign table is still there.
    assert.match((await lab.nft(ns, ["list", "tables"])).stdout, /someone_else/);
  });

  it("report-only mode leaves the drift in place", async () => {
    await lab.nft(ns, ["delete", "counter", "inet", "palisade", "udp_seen"], undefined, { allowFailure: true });
    await lab.nft(ns, ["add", "chain", "inet", "palisade", "handmade"]);
    const r = await drift.check({ restore: false });
    assert.equal(r.drifted, true);
    assert.equal(r.restored, false);
    assert.match(r.details, /unexpected chain inet palisade handmade/);
    assert.match((await lab.nft(ns, ["list", "table", "inet", "palisade"])).stdout, /handmade/);
    const fixed = await drift.check({ restore: true });
    assert.equal(fixed.restored, true);
    assert.doesNotMatch((await lab.nft(ns, ["list", "table", "inet", "palisade"])).stdout, /handmade/);
  });
});
