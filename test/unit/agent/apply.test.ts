// The applier's decisions (which plan, when to carry, when to roll back, what is reported)
// on the in-memory FakeDriver, whose behaviour test/kernel/driver-contract.test.ts checks
// against nft. The kernel tests (test/kernel/agent-apply.test.ts) prove the same on nft.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Applier, type SafeApplyRequest } from "../../../src/agent/apply.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import type { Snapshot } from "../../../src/engine/driver/index.ts";
import { FakeDriver } from "../../support/fake-driver.ts";
import { brokenText, fixtureDesired, fixtureText } from "../../support/agent-rulesets.ts";

const LAN = "10.9.0.0/24";
const yes = async () => true;

function setup() {
  const kernel = new FakeDriver();
  const changes: string[] = [];
  const applier = new Applier(kernel, memoryLog("error"), {
    beforeChange: async () => void changes.push("before"),
    afterChange: async (how) => void changes.push(how),
  });
  const apply = (req: Partial<SafeApplyRequest> & { text: string }) =>
    applier.safeApply({ confirmTimeoutMs: 1000, confirmed: yes, ...req });
  const values = async () => {
    const st = await kernel.readTable("inet", "palisade");
    return {
      udp: st.counters.find((c) => c.name === "udp_seen")?.packets,
      used: st.quotas.find((q) => q.name === "q1")?.used,
      src: st.sets.find((s) => s.name === "acct_lan_src")?.elements.map((e) => `${e.key}:${e.packets}`),
      priority: st.chains.find((c) => c.name === "input")?.priority,
      rules: st.rules.length,
    };
  };
  const traffic = () => {
    kernel.count("inet", "palisade", "udp_seen", 4, 400);
    kernel.hit("inet", "palisade", "acct_lan_src", "10.9.0.7", 4, 400);
  };
  return { kernel, applier, apply, values, traffic, changes };
}

describe("Applier on the fake driver", () => {
  it("applies incrementally and keeps counters and set elements across re-applies", async () => {
    const { apply, values, traffic, changes } = setup();
    assert.deepEqual(await apply({ text: fixtureText({ lan: LAN }) }), { status: "applied", mode: "incremental" });
    traffic();
    const out = await apply({ text: fixtureText({ lan: LAN, extra: ["tcp dport 9 drop"] }) });
    assert.equal(out.mode, "incremental");
    const v = await values();
    assert.equal(v.udp, 4);
    assert.deepEqual(v.src, ["10.9.0.7:4"]);
    assert.deepEqual(changes, ["before", "incremental", "before", "incremental"]);
  });

  it("carries values into the compiled tables when the kernel refuses the incremental form", async () => {
    const { apply, values, traffic, changes } = setup();
    await apply({ text: fixtureText({ lan: LAN }) });
    traffic();
    const out = await apply(fixtureDesired({ lan: LAN, priority: 10 }));
    assert.deepEqual(out, { status: "applied", mode: "carry" });
    const v = await values();
    assert.equal(v.priority, 10);
    assert.equal(v.udp, 4);
    assert.deepEqual(v.src, ["10.9.0.7:4"]);
    assert.deepEqual(changes.slice(-3), ["before", "before", "carry"], "a second final read before the replace");
  });

  it("without compiled tables a refused incremental apply fails and the kernel is unchanged", async () => {
    const { kernel, apply, values } = setup();
    await apply({ text: fixtureText({ lan: LAN }) });
    const before = await values();
    let notApplied = "";
    const out = await apply({
      text: fixtureText({ lan: LAN, priority: 10 }),
      onNotApplied: async (o) => void (notApplied = o.code ?? ""),
    });
    assert.equal(out.status, "failed");
    assert.equal(out.code, "apply_failed");
    assert.match(out.error ?? "", /priority/);
    assert.equal(notApplied, "apply_failed");
    assert.deepEqual(await values(), before);
    assert.equal(kernel.applied.length, 1);
  });

  it("a text the kernel refuses is reported as check_failed with the check's message, no carry and no change", async () => {
    const { kernel, apply } = setup();
    await apply({ text: fixtureText({ lan: LAN }) });
    const before = (await kernel.snapshot()).text;
    let notApplied = "";
    const out = await apply({
      ...fixtureDesired({ lan: LAN }),
      text: brokenText(),
      onNotApplied: async (o) => void (notApplied = o.code ?? ""),
    });
    assert.equal(out.code, "check_failed");
    assert.match(out.error ?? "", /no_such_chain/);
    assert.equal(notApplied, "check_failed", "the pending record written before the apply is dropped");
    assert.equal(kernel.applied.length, 1, "refused once, and no carry was tried");
    assert.equal((await kernel.snapshot()).text, before);
  });

  it("a pending record that cannot be written stops the apply (state_error)", async () => {
    const { kernel, apply } = setup();
    const out = await apply({
      text: fixtureText({ lan: LAN }),
      beforeApply: async () => Promise.reject(new Error("ENOSPC")),
    });
    assert.equal(out.code, "state_error");
    assert.deepEqual(await kernel.listTables(), []);
  });

  it("no confirmation: the previous rules come back and counters keep what they counted meanwhile", async () => {
    const { apply, values, kernel } = setup();
    await apply({ text: fixtureText({ lan: LAN }) });
    const rulesBefore = (await values()).rules;
    let snap: Snapshot | undefined;
    const out = await apply({
      text: fixtureText({ lan: LAN, extra: ["tcp dport 1 drop", "tcp dport 2 drop"] }),
      beforeApply: async (s) => void (snap = s),
      confirmed: async () => {
        kernel.count("inet", "palisade", "udp_seen", 2, 200); // traffic while waiting
        return false;
      },
    });
    assert.equal(out.status, "rolled_back");
    assert.equal(out.code, "confirm_timeout");
    assert.ok(snap?.text.includes("udp_seen"));
    const v = await values();
    assert.equal(v.rules, rulesBefore, "rules are the previous version's");
    assert.equal(v.udp, 2, "not rewound to the snapshot's 0");
  });

  it("a ct helper the new version drops is deleted; a rollback puts it back, counters kept", async () => {
    const { apply, kernel, traffic } = setup();
    const FTP = { type: "ftp", protocol: "tcp", dport: 21 } as const;
    const TFTP = { type: "tftp", protocol: "udp", dport: 69 } as const;
    const names = async () => (await kernel.readTable("inet", "palisade")).ctHelpers.map((h) => h.name).sort();
    const udp = async () => (await kernel.readTable("inet", "palisade")).counters.find((c) => c.name === "udp_seen");
    assert.equal((await apply(fixtureDesired({ lan: LAN, ctHelpers: [FTP, TFTP] }))).mode, "incremental");
    traffic();
    assert.deepEqual(await names(), ["helper_ftp_tcp", "helper_tftp_udp"]);
    // Not confirmed: back to both helpers (the rollback target is the known state's text).
    const v2 = fixtureDesired({ lan: LAN, ctHelpers: [TFTP] });
    assert.equal((await apply({ ...v2, confirmed: async () => false })).status, "rolled_back");
    assert.deepEqual(await names(), ["helper_ftp_tcp", "helper_tftp_udp"]);
    // Confirmed, first from a listing (no known state after a rollback), then from the known state.
    assert.deepEqual(await apply(v2), { status: "applied", mode: "incremental" });
    assert.deepEqual(await names(), ["helper_tftp_udp"]);
    assert.deepEqual(await apply(fixtureDesired({ lan: LAN })), { status: "applied", mode: "incremental" });
    assert.deepEqual(await names(), []);
    assert.equal((await udp())?.packets, 4, "counters kept");
  });

  it("a rollback the incremental form cannot do is a verbatim restore, and telemetry is told (rewound)", async () => {
    const { apply, values, changes } = setup();
    await apply({ text: fixtureText({ lan: LAN }) });
    const out = await apply({ ...fixtureDesired({ lan: LAN, priority: 10 }), confirmed: async () => false });
    assert.equal(out.status, "rolled_back");
    assert.equal(out.mode, "carry");
    assert.equal((await values()).priority, 0);
    assert.equal(changes.at(-1), "rewound");
  });

  it("a confirmed apply that cannot be recorded is rolled back (state_error)", async () => {
    const { apply, values } = setup();
    await apply({ text: fixtureText({ lan: LAN }) });
    const before = (await values()).rules;
    const out = await apply({
      text: fixtureText({ lan: LAN, extra: ["tcp dport 1 drop"] }),
      onConfirmed: async () => Promise.reject(new Error("disk full")),
    });
    assert.equal(out.status, "rolled_back");
    assert.equal(out.code, "state_error");
    assert.equal((await values()).rules, before);
  });

  describe("known state (no listing after a confirmed apply)", () => {
    /** setup() with a count of the kernel listings (snapshot calls). */
    function counted() {
      const t = setup();
      const listings = { n: 0 };
      const snapshot = t.kernel.snapshot.bind(t.kernel);
      t.kernel.snapshot = () => {
        listings.n++;
        return snapshot();
      };
      return { ...t, listings };
    }

    it("the next apply does not list the kernel, and its rollback puts the confirmed rules back with live counters", async () => {
      const { apply, values, kernel, listings } = counted();
      await apply(fixtureDesired({ lan: LAN }));
      assert.equal(listings.n, 1, "the first apply lists the kernel");
      const before = await values();
      kernel.count("inet", "palisade", "udp_seen", 3, 300);
      let snap: Snapshot | undefined;
      const out = await apply({
        ...fixtureDesired({ lan: LAN, extra: ["tcp dport 1 drop", "tcp dport 2 drop"] }),
        beforeApply: async (s) => void (snap = s),
        confirmed: async () => {
          kernel.count("inet", "palisade", "udp_seen", 2, 200);
          return false;
        },
      });
      assert.equal(out.status, "rolled_back");
      assert.equal(listings.n, 1, "no listing for the second apply");
      assert.equal(snap?.text, fixtureText({ lan: LAN }), "the pending record holds the confirmed text");
      const v = await values();
      assert.equal(v.rules, before.rules);
      assert.equal(v.udp, 5, "counted before and while waiting, nothing rewound");
      // A rollback is not a confirmed apply: the next apply lists the kernel again.
      await apply(fixtureDesired({ lan: LAN }));
      assert.equal(listings.n, 2);
    });

    it("a text that deletes a counter lists the kernel, so a rollback gives the counter back with its value", async () => {
      const { apply, kernel, listings } = counted();
      await apply(fixtureDesired({ lan: LAN, withAll: true }));
      kernel.count("inet", "palisade", "acct_all_total", 7, 700);
      const out = await apply({ ...fixtureDesired({ lan: LAN }), confirmed: async () => false });
      assert.equal(out.status, "rolled_back");
      assert.equal(listings.n, 2, "the second apply listed the kernel");
      const st = await kernel.readTable("inet", "palisade");
      assert.equal(st.counters.find((c) => c.name === "acct_all_total")?.packets, 7);
    });

    it("applies without compiled tables, and after forgetKnownState (drift found), list the kernel", async () => {
      const { apply, applier, listings } = counted();
      await apply({ text: fixtureText({ lan: LAN }) });
      await apply({ text: fixtureText({ lan: LAN, extra: ["tcp dport 1 drop"] }) });
      assert.equal(listings.n, 2, "text alone: nothing known");
      await apply(fixtureDesired({ lan: LAN }));
      await apply(fixtureDesired({ lan: LAN, extra: ["tcp dport 1 drop"] }));
      assert.equal(listings.n, 3);
      applier.forgetKnownState();
      await apply(fixtureDesired({ lan: LAN }));
      assert.equal(listings.n, 4);
    });

    it("a change of a base chain's priority lists the kernel: its unconfirmed apply rolls back with every value", async () => {
      // The kernel refuses the priority change in place, so the apply and its rollback both
      // replace the table; only a listing (or a carry from the live kernel) keeps the values.
      const { apply, values, traffic, listings } = counted();
      await apply(fixtureDesired({ lan: LAN }));
      traffic();
      const out = await apply({ ...fixtureDesired({ lan: LAN, priority: 10 }), confirmed: async () => false });
      assert.equal(out.status, "rolled_back");
      assert.equal(listings.n, 2, "a changed chain definition is not planned from the known state");
      const v = await values();
      assert.equal(v.priority, 0, "the confirmed priority is back");
      assert.equal(v.udp, 4, "the named counter kept its value");
      assert.deepEqual(v.src, ["10.9.0.7:4"], "the accounting set kept its elements");
    });

    it("a change of a base chain's policy is planned from the known state, and its rollback gives the policy back", async () => {
      // The kernel takes a new policy in place, so neither the apply nor its rollback needs a listing.
      const { apply, kernel, values, traffic, listings } = counted();
      await apply(fixtureDesired({ lan: LAN }));
      traffic();
      const policy = async () =>
        (await kernel.readTable("inet", "palisade")).chains.find((c) => c.name === "input")?.policy;
      const out = await apply({
        ...fixtureDesired({ lan: LAN, policy: "drop" }),
        confirmed: async () => {
          assert.equal(await policy(), "drop", "the new policy is in the kernel while waiting");
          return false;
        },
      });
      assert.equal(out.status, "rolled_back");
      assert.equal(out.mode, "incremental");
      assert.equal(listings.n, 1, "no listing for a policy change");
      assert.equal(await policy(), "accept", "the confirmed policy is back");
      const v = await values();
      assert.equal(v.udp, 4, "the named counter kept its value");
      assert.deepEqual(v.src, ["10.9.0.7:4"], "the accounting set kept its elements");
    });

    it("a known-state rollback the kernel refuses in place carries the live values instead of restoring the text", async () => {
      const { apply, values, traffic, kernel } = counted();
      await apply(fixtureDesired({ lan: LAN }));
      traffic();
      // Same shapes (planned from the known state); the incremental rollback is then refused once.
      const applyOnce = kernel.apply.bind(kernel);
      let refuseNext = false;
      kernel.apply = async (text: string) => {
        if (refuseNext) {
          refuseNext = false;
          throw Object.assign(new Error("refused"), { code: "nft_rejected" });
        }
        return applyOnce(text);
      };
      const out = await apply({
        ...fixtureDesired({ lan: LAN, extra: ["tcp dport 1 drop"] }),
        confirmed: async () => {
          refuseNext = true;
          return false;
        },
      });
      assert.equal(out.status, "rolled_back");
      const v = await values();
      assert.equal(v.udp, 4, "the named counter kept its value");
      assert.deepEqual(v.src, ["10.9.0.7:4"], "the accounting set kept its elements");
    });

    it("a drift repair through applyText forgets the known state", async () => {
      const { apply, applier, listings } = counted();
      await apply(fixtureDesired({ lan: LAN }));
      await applier.applyText(fixtureText({ lan: LAN }));
      await apply(fixtureDesired({ lan: LAN }));
      assert.equal(listings.n, 2);
    });
  });
});
