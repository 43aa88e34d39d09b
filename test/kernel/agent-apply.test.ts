// The safe apply against a real kernel, inside throwaway network namespaces: the agent
// manages namespace `ns` (driver option netns), never the root namespace.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { Applier } from "../../src/agent/apply.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { readCounter, readQuota, readSet, nftDriver } from "../../src/engine/driver/index.ts";
import { brokenText, fixtureDesired, fixtureText } from "../support/agent-rulesets.ts";

const FOREIGN = `table ip foreign_fw {
  counter kept { packets 7 bytes 700 }
  chain c {
    type filter hook input priority -5; policy accept;
    counter
  }
}
`;

describe("agent safe apply (kernel, netns)", () => {
  let lab: NetnsLab;
  let ns: string;
  let peer: string;
  let lan: string;
  let dst: string;
  const drv = () => ({ netns: ns });

  before(async () => {
    lab = createLab();
    ({ ns, peer, dst, lan } = await lab.pairWithLan());
    await lab.nft(ns, ["-f", "-"], FOREIGN);
  });
  after(async () => {
    await lab.cleanup();
  });

  const list = async (what = ["list", "table", "inet", "palisade"]) =>
    (await lab.nft(ns, what, undefined, { allowFailure: true })).stdout;
  const foreign = () => list(["list", "table", "ip", "foreign_fw"]);
  const tables = async () => (await lab.nft(ns, ["list", "tables"])).stdout;

  it("rolls back to NO Palisade tables when the first apply is not confirmed", async () => {
    const before = await foreign();
    const applier = new Applier(nftDriver(drv()), memoryLog());
    let applied = false;
    const out = await applier.safeApply({
      text: fixtureText({ lan }),
      confirmTimeoutMs: 2000,
      onApplied: () => (applied = true),
      confirmed: (ms) => new Promise((r) => setTimeout(() => r(false), ms)),
    });
    assert.equal(applied, true);
    assert.equal(out.status, "rolled_back");
    assert.equal(out.code, "confirm_timeout");
    assert.doesNotMatch(await tables(), /palisade/);
    assert.equal(await foreign(), before);
  });

  it("keeps a confirmed apply", async () => {
    const applier = new Applier(nftDriver(drv()), memoryLog());
    const out = await applier.safeApply({
      text: fixtureText({ lan }),
      confirmTimeoutMs: 2000,
      confirmed: async () => true,
    });
    assert.equal(out.status, "applied");
    assert.match(await list(), /acct_lan_src/);
  });

  it("restores the previous rules exactly when a second version is not confirmed", async () => {
    const before = await list();
    const foreignBefore = await foreign();
    const applier = new Applier(nftDriver(drv()), memoryLog());
    const t0 = Date.now();
    // What the kernel held in the confirm window: the new version must have been applied
    // before it was rolled back, or this test would pass without any rollback happening.
    let during: Promise<string> | undefined;
    const out = await applier.safeApply({
      text: fixtureText({ lan, extra: ["tcp dport 9999 drop"], quotaBytes: 5000 }),
      confirmTimeoutMs: 2000,
      onApplied: () => {
        during = list();
      },
      confirmed: (ms) => new Promise((r) => setTimeout(() => r(false), ms)),
    });
    assert.equal(out.status, "rolled_back");
    assert.ok(Date.now() - t0 >= 2000);
    assert.ok(during, "onApplied was called");
    assert.match(await during, /tcp dport 9999 drop/);
    assert.equal(await list(), before);
    assert.equal(await foreign(), foreignBefore);
  });

  it("reports a version nft -c refuses as failed with the kernel's message; rules intact", async () => {
    const before = await list();
    const applier = new Applier(nftDriver(drv()), memoryLog());
    const out = await applier.safeApply({ text: brokenText(), confirmTimeoutMs: 1000, confirmed: async () => true });
    assert.equal(out.status, "failed");
    assert.equal(out.code, "check_failed");
    assert.match(out.error ?? "", /no_such_chain|No such file or directory|Could not process rule/);
    assert.equal(await list(), before);
  });

  it("re-applying (same, changed, and a change that forces a table replace) keeps accounting, quota and counter state", async () => {
    const applier = new Applier(nftDriver(drv()), memoryLog());
    await lab.sendUdp(peer, dst, 5000, { count: 20, size: 100 });
    const read = async () => {
      const src = await readSet("inet", "palisade", "acct_lan_src", drv());
      const total = await readCounter("inet", "palisade", "acct_lan_srctotal", drv());
      const udp = await readCounter("inet", "palisade", "udp_seen", drv());
      const q = await readQuota("inet", "palisade", "q1", drv());
      return {
        src: src.elements.map((e) => `${e.key}:${e.packets}:${e.bytes}`).sort(),
        total: [total.packets, total.bytes],
        udp: [udp.packets, udp.bytes],
        used: q.used,
      };
    };
    const v0 = await read();
    assert.deepEqual(v0.udp, [20, 20 * 128]);
    assert.equal(v0.used, 20 * 128);
    assert.equal(v0.src.length, 1);

    // Same text again.
    assert.equal(
      (await applier.safeApply({ text: fixtureText({ lan }), confirmTimeoutMs: 1000, confirmed: async () => true }))
        .mode,
      "incremental",
    );
    assert.deepEqual(await read(), v0);
    // Slightly changed: an extra rule and a new quota budget.
    const changed = await applier.safeApply({
      text: fixtureText({ lan, extra: ["tcp dport 9999 drop"], quotaBytes: 20_000_000 }),
      confirmTimeoutMs: 1000,
      confirmed: async () => true,
    });
    assert.equal(changed.status, "applied");
    assert.equal(changed.mode, "incremental");
    assert.deepEqual(await read(), v0);
    assert.match(await list(), /20000000 bytes used 2560 bytes/);
    // The base chain moves to another priority: the kernel refuses that in place, so the
    // agent replaces the table and carries the values into the new definitions.
    // Without the compiled tables there is nothing to carry into: refused, kernel unchanged.
    const listed = await list();
    const bare = await applier.safeApply({
      text: fixtureText({ lan, priority: 10 }),
      confirmTimeoutMs: 1000,
      confirmed: async () => true,
    });
    assert.equal(bare.status, "failed");
    assert.equal(bare.code, "apply_failed");
    assert.equal(await list(), listed);
    const carried = await applier.safeApply({
      ...fixtureDesired({ lan, priority: 10 }),
      confirmTimeoutMs: 1000,
      confirmed: async () => true,
    });
    assert.equal(carried.status, "applied", carried.error);
    assert.equal(carried.mode, "carry");
    assert.deepEqual(await read(), v0);
    assert.match(await list(), /priority filter \+ 10/);
  });
});
