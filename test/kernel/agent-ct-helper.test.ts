// A ct helper object a later version no longer uses is deleted by the agent's incremental
// apply, and nothing else changes: the version with helpers ftp and tftp is applied through
// the Applier, UDP traffic moves the named counters, then the version with tftp only. The
// `nft list ruleset` of the namespace must then be the one before, minus the ftp helper's
// block and the rule that used it (counter values, the tftp helper and a foreign table
// unchanged). Run three ways, for the three places the plan gets the kernel's object names
// from: the applier's known state (a second confirmed apply), a snapshot's listing (a fresh
// applier), and the JSON read (applyText without compiled tables, as a drift repair runs).
// Drift checks against the version applied find nothing. A helper added by hand is drift;
// an unconfirmed apply that drops a helper rolls back with it. A helper changed by hand in
// place (same name, another type and protocol) is drift, and both a restore and the next
// apply put the declared one back, counters kept.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { Applier } from "../../src/agent/apply.ts";
import { DriftDetector } from "../../src/agent/drift.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { nftDriver } from "../../src/engine/driver/index.ts";
import { fixtureDesired } from "../support/agent-rulesets.ts";

const FOREIGN = `table ip foreign_fw {
  counter kept { packets 7 bytes 700 }
  ct helper ftp_foreign { type "ftp" protocol tcp; l3proto ip; }
  chain c {
    type filter hook prerouting priority -150; policy accept;
    tcp dport 2121 ct helper set "ftp_foreign"
  }
}
`;

const FTP = { type: "ftp", protocol: "tcp", dport: 21 } as const;
const TFTP = { type: "tftp", protocol: "udp", dport: 69 } as const;

describe("agent: ct helper objects a version drops (kernel, netns)", () => {
  let lab: NetnsLab;
  let ns: string;
  let peer: string;
  let dst: string;
  let lan: string;
  let skip: string | undefined;

  before(async () => {
    lab = createLab();
    ({ ns, peer, dst, lan } = await lab.pairWithLan());
    const r = await lab.nft(ns, ["-f", "-"], FOREIGN, { allowFailure: true });
    const t = await lab.nft(
      ns,
      ["-f", "-"],
      `table inet palisade_probe {\n ct helper h {\n  type "tftp" protocol udp\n  l3proto inet\n }\n}\n`,
      {
        allowFailure: true,
      },
    );
    if (r.code !== 0 || t.code !== 0)
      skip = `the kernel lacks the ftp or tftp conntrack helper (nf_conntrack_ftp, nf_conntrack_tftp): ${r.stderr.trim()} ${t.stderr.trim()}`;
    else await lab.nft(ns, ["delete", "table", "inet", "palisade_probe"]);
  });
  after(async () => {
    await lab.cleanup();
  });

  const ruleset = async () => (await lab.nft(ns, ["list", "ruleset"])).stdout;

  it("the incremental apply deletes the helper the new version does not declare, and only it", async (t) => {
    if (skip) {
      t.skip(skip);
      return;
    }
    const v1 = fixtureDesired({ lan, ctHelpers: [FTP, TFTP] });
    const v2 = fixtureDesired({ lan, ctHelpers: [TFTP] });
    const v3 = fixtureDesired({ lan });
    const log = memoryLog();
    const confirm = { confirmTimeoutMs: 5000, confirmed: async () => true };
    const known = new Applier(nftDriver({ netns: ns }), log);
    assert.equal((await known.safeApply({ text: v1.text, tables: v1.tables, ...confirm })).status, "applied");
    await lab.sendUdp(peer, dst, 5000, { count: 5, size: 50 });
    const withBoth = await ruleset();
    assert.match(withBoth, /ct helper helper_ftp_tcp \{/);
    assert.match(withBoth, /counter udp_seen \{\n\t\tpackets 5 /);
    // What v2 must leave: the listing before, minus the ftp helper's block and its rule.
    const expected = withBoth
      .replace(/\tct helper helper_ftp_tcp \{\n[^}]*\}\n\n/, "")
      .replace(/\t\ttcp dport 21 ct helper set "helper_ftp_tcp"\n/, "");
    assert.notEqual(expected, withBoth);
    assert.match(expected, /ct helper helper_tftp_udp \{/);

    // 1. The known state of the applier that applied v1 (no listing of the kernel).
    assert.equal((await known.safeApply({ text: v2.text, tables: v2.tables, ...confirm })).status, "applied");
    assert.equal(await ruleset(), expected, "known state: only the ftp helper and its rule are gone");
    const drift = new DriftDetector(known.driver, known, log);
    await drift.setDesired(v2.text, v2.tables);
    assert.deepEqual(await drift.check({ restore: false }), { drifted: false, details: "", restored: false });

    // 2. A fresh applier, whose plan takes the names from its snapshot's listing.
    assert.equal(
      (await new Applier(nftDriver({ netns: ns }), log).safeApply({ text: v1.text, tables: v1.tables, ...confirm }))
        .status,
      "applied",
    );
    assert.match(await ruleset(), /ct helper helper_ftp_tcp \{/);
    assert.equal(
      (await new Applier(nftDriver({ netns: ns }), log).safeApply({ text: v2.text, tables: v2.tables, ...confirm }))
        .status,
      "applied",
    );
    assert.equal(await ruleset(), expected, "listing: only the ftp helper and its rule are gone");
    assert.deepEqual(await drift.check({ restore: false }), { drifted: false, details: "", restored: false });

    // 3. Text without compiled tables: the names come from the kernel's JSON.
    const plain = new Applier(nftDriver({ netns: ns }), log);
    assert.equal(await plain.applyText(v1.text), "incremental");
    assert.match(await ruleset(), /ct helper helper_ftp_tcp \{/);
    assert.equal(await plain.applyText(v2.text), "incremental");
    assert.equal(await ruleset(), expected, "JSON read: only the ftp helper and its rule are gone");
    assert.deepEqual(await drift.check({ restore: false }), { drifted: false, details: "", restored: false });

    // No helper left at all: both objects and their chain go, the counters stay.
    assert.equal((await known.safeApply({ text: v3.text, tables: v3.tables, ...confirm })).status, "applied");
    const none = await ruleset();
    assert.doesNotMatch(none, /helper_(ftp|tftp)|ct_helper_prerouting/);
    assert.match(none, /counter udp_seen \{\n\t\tpackets 5 /);
    assert.match(none, /ct helper ftp_foreign \{/, "the foreign table's helper is not Palisade's");
  });

  it("a helper added by hand is drift and restore deletes it; an unconfirmed apply that drops one puts it back", async (t) => {
    if (skip) {
      t.skip(skip);
      return;
    }
    const v1 = fixtureDesired({ lan, ctHelpers: [FTP, TFTP] });
    const v2 = fixtureDesired({ lan, ctHelpers: [TFTP] });
    const log = memoryLog();
    const applier = new Applier(nftDriver({ netns: ns }), log);
    const drift = new DriftDetector(applier.driver, applier, log);
    const applied = await applier.safeApply({
      text: v1.text,
      tables: v1.tables,
      confirmTimeoutMs: 5000,
      confirmed: async () => true,
      onConfirmed: () => drift.setDesired(v1.text, v1.tables),
    });
    assert.equal(applied.status, "applied");
    await lab.sendUdp(peer, dst, 5000, { count: 3, size: 50 });
    // The table is the first test's, counters kept: read the value rather than assume it.
    const udpSeen = /counter udp_seen \{\n\t\tpackets \d+ bytes \d+/.exec(await ruleset())?.[0];
    assert.ok(udpSeen && !udpSeen.includes("packets 0 "), "the UDP traffic was counted");

    await lab.nft(
      ns,
      ["-f", "-"],
      'add ct helper inet palisade by_hand { type "ftp" protocol tcp ; l3proto inet ; }\n',
    );
    const seen = await drift.check({ restore: true });
    assert.deepEqual([seen.drifted, seen.restored], [true, true], seen.details);
    assert.match(seen.details, /unexpected ct helper inet palisade by_hand/);
    const repaired = await ruleset();
    assert.doesNotMatch(repaired, /by_hand/);
    assert.match(repaired, /ct helper helper_ftp_tcp \{/);
    assert.ok(repaired.includes(udpSeen), "the repair is incremental: counters kept");

    // v2 drops the ftp helper, and the apply is never confirmed: the rollback puts it back.
    const rolled = await applier.safeApply({
      text: v2.text,
      tables: v2.tables,
      confirmTimeoutMs: 200,
      confirmed: async () => false,
    });
    assert.equal(rolled.status, "rolled_back");
    const back = await ruleset();
    assert.match(back, /ct helper helper_ftp_tcp \{/);
    assert.match(back, /tcp dport 21 ct helper set "helper_ftp_tcp"/);
    assert.ok(back.includes(udpSeen), "the rollback keeps counters");
    assert.deepEqual(await drift.check({ restore: false }), { drifted: false, details: "", restored: false });
  });

  it("a helper changed by hand in place is drift; restore and the next apply replace it, counters kept", async (t) => {
    if (skip) {
      t.skip(skip);
      return;
    }
    const v1 = fixtureDesired({ lan, ctHelpers: [FTP, TFTP] });
    const log = memoryLog();
    const confirm = { confirmTimeoutMs: 5000, confirmed: async () => true };
    const applier = new Applier(nftDriver({ netns: ns }), log);
    const drift = new DriftDetector(applier.driver, applier, log);
    const applied = await applier.safeApply({
      text: v1.text,
      tables: v1.tables,
      ...confirm,
      onConfirmed: () => drift.setDesired(v1.text, v1.tables),
    });
    assert.equal(applied.status, "applied");
    await lab.sendUdp(peer, dst, 5000, { count: 2, size: 50 });
    const udpSeen = /counter udp_seen \{\n\t\tpackets \d+ bytes \d+/.exec(await ruleset())?.[0];
    assert.ok(udpSeen && !udpSeen.includes("packets 0 "), "the UDP traffic was counted");
    // 6/17 where the host has no /etc/protocols.
    const declared = /ct helper helper_ftp_tcp \{\n\t\ttype "ftp" protocol (tcp|6)\n/;
    assert.match(await ruleset(), declared);

    // The rule that uses the helper must go for the delete; it comes back as it was, so only the helper differs.
    const byHand = async (spec = 'type "tftp" protocol udp ; l3proto inet ;') => {
      await lab.nft(
        ns,
        ["-f", "-"],
        [
          "flush chain inet palisade ct_helper_prerouting",
          "delete ct helper inet palisade helper_ftp_tcp",
          `add ct helper inet palisade helper_ftp_tcp { ${spec} }`,
          'add rule inet palisade ct_helper_prerouting tcp dport 21 ct helper set "helper_ftp_tcp"',
          'add rule inet palisade ct_helper_prerouting udp dport 69 ct helper set "helper_tftp_udp"',
          "",
        ].join("\n"),
      );
      assert.doesNotMatch(
        await ruleset(),
        /ct helper helper_ftp_tcp \{\n\t\ttype "ftp" protocol (tcp|6)\n\t\tl3proto inet\n/,
      );
    };
    await byHand();
    const seen = await drift.check({ restore: true });
    assert.deepEqual([seen.drifted, seen.restored], [true, true], seen.details);
    assert.equal(seen.details, "changed ct helper inet palisade helper_ftp_tcp");
    const repaired = await ruleset();
    assert.match(repaired, declared);
    assert.match(repaired, /tcp dport 21 ct helper set "helper_ftp_tcp"/);
    assert.ok(repaired.includes(udpSeen), "the repair is incremental: counters kept");
    assert.deepEqual(await drift.check({ restore: false }), { drifted: false, details: "", restored: false });

    // Changed again, then the same version applied by a fresh applier (its plan reads the listing).
    await byHand();
    assert.equal(
      (await new Applier(nftDriver({ netns: ns }), log).safeApply({ text: v1.text, tables: v1.tables, ...confirm }))
        .status,
      "applied",
    );
    const reapplied = await ruleset();
    assert.match(reapplied, declared);
    assert.ok(reapplied.includes(udpSeen), "the apply is incremental: counters kept");
    assert.deepEqual(await drift.check({ restore: false }), { drifted: false, details: "", restored: false });

    // Only its layer 3 changed by hand (IPv4 only: IPv6 connections would lose the helper).
    const forBoth = /ct helper helper_ftp_tcp \{\n\t\ttype "ftp" protocol (tcp|6)\n\t\tl3proto inet\n/;
    await byHand('type "ftp" protocol tcp ; l3proto ip ;');
    const l3 = await drift.check({ restore: true });
    assert.deepEqual([l3.drifted, l3.restored], [true, true], l3.details);
    assert.equal(l3.details, "changed ct helper inet palisade helper_ftp_tcp");
    assert.match(await ruleset(), forBoth);
    await byHand('type "ftp" protocol tcp ; l3proto ip6 ;');
    assert.equal(
      (await new Applier(nftDriver({ netns: ns }), log).safeApply({ text: v1.text, tables: v1.tables, ...confirm }))
        .status,
      "applied",
    );
    assert.match(await ruleset(), forBoth);
    assert.ok((await ruleset()).includes(udpSeen), "counters kept");
    assert.deepEqual(await drift.check({ restore: false }), { drifted: false, details: "", restored: false });
  });
});
