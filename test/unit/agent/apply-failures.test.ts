// Applies whose outcome is not a clean yes or no. A rollback that fails (the kernel refuses
// both the incremental form and the verbatim restore) keeps pending.json, the way back: the
// next start tries again, in the pipeline and in the start-up recovery alike. An nft killed
// by its timeout may have had its batch committed: the snapshot is put back. On the
// FakeDriver, behind switches.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApplyPipeline } from "../../../src/agent/apply-pipeline.ts";
import { Applier } from "../../../src/agent/apply.ts";
import { DriftDetector } from "../../../src/agent/drift.ts";
import { Outbox } from "../../../src/agent/outbox.ts";
import { recoverPending } from "../../../src/agent/recover.ts";
import { StateDir } from "../../../src/agent/state.ts";
import { NftError, type Driver } from "../../../src/engine/driver/index.ts";
import type { AgentMessage } from "../../../src/protocol/agent.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import { FakeDriver } from "../../support/fake-driver.ts";
import { waitFor } from "../../support/wait.ts";
import { fixtureDesired, fixtureText } from "../../support/agent-rulesets.ts";

const LAN = "10.9.0.0/24";

/** The fake kernel, whose writes fail while `refusing` is set. */
function switchable(kernel: FakeDriver): { driver: Driver; refuse(on: boolean): void } {
  let refusing = false;
  const no = () => {
    throw new NftError("nft_rejected", "nft refused the ruleset: refused by the test", { kernelMessage: "test" });
  };
  const driver: Driver = Object.create(kernel);
  driver.apply = async (text) => (refusing ? no() : kernel.apply(text));
  driver.restore = async (snap) => (refusing ? no() : kernel.restore(snap));
  return { driver, refuse: (on) => void (refusing = on) };
}

describe("a rollback that fails keeps the way back", () => {
  it("in the pipeline: FAILED rollback_failed, pending.json kept; the next start restores the version before", async () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-rollback-failed-"));
    try {
      const log = memoryLog("error");
      const kernel = new FakeDriver();
      await kernel.apply(fixtureText({ lan: LAN })); // v1, before this agent
      const rules = async () => (await kernel.readTable("inet", "palisade")).rules.length;
      const v1Rules = await rules();
      const { driver, refuse } = switchable(kernel);
      const state = await StateDir.open(dir);
      const sent: AgentMessage[] = [];
      const outbox = await Outbox.open(state.path("outbox.json"), (m) => (sent.push(m), true), log);
      const applier = new Applier(driver, log);
      applier.hooks = { afterChange: async () => refuse(true) }; // v2 in, then every write refused
      const v2 = fixtureDesired({ lan: LAN, extra: ["tcp dport 9 drop"] });
      const pipeline = new ApplyPipeline(
        {
          state,
          applier,
          drift: new DriftDetector(driver, applier, log),
          outbox,
          log,
          failsafe: async () => ({ apiAddresses: ["192.0.2.10"], apiPort: 50051 }),
          render: async () => ({ ok: true, ...v2 }),
        },
        undefined,
      );
      const ok = await pipeline.apply({
        deploymentId: "d2",
        targetId: "t2",
        version: { ruleset: "edge", version: 2, checksum: "c2" },
        policyJson: "{}",
        confirmTimeoutSeconds: 1, // no Confirm comes
        attempt: 0,
      });
      assert.equal(ok, false);
      const results = sent.flatMap((m) => (m.applyResult ? [m.applyResult] : []));
      assert.deepEqual(
        results.map((r) => r.status),
        ["APPLY_STATUS_APPLYING", "APPLY_STATUS_FAILED"],
      );
      assert.match(results[1]!.error, /^rollback_failed/);
      assert.equal(await rules(), v1Rules + 1, "v2 is still in the kernel");
      assert.equal((await state.readPending())?.targetId, "t2", "the way back is kept");

      // The next start: the kernel takes writes again; recovery puts v1 back and only then forgets it.
      refuse(false);
      applier.hooks = {};
      assert.equal(await recoverPending({ state, applier: new Applier(driver, log), outbox, log }), "rolled_back");
      assert.equal(await rules(), v1Rules, "v1 again");
      assert.equal(await state.readPending(), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("in the start-up recovery: a restore that fails keeps pending.json for the next start", async () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-rollback-failed-"));
    try {
      const log = memoryLog("error");
      const kernel = new FakeDriver();
      await kernel.apply(fixtureText({ lan: LAN }));
      const { driver, refuse } = switchable(kernel);
      const state = await StateDir.open(dir);
      await state.writePending({
        deploymentId: "d2",
        targetId: "t2",
        attempt: 0,
        version: { ruleset: "edge", version: 2, checksum: "c2" },
        snapshot: await kernel.snapshot(),
        startedAt: new Date().toISOString(),
      });
      const outbox = await Outbox.open(state.path("outbox.json"), () => true, log);
      refuse(true);
      assert.equal(await recoverPending({ state, applier: new Applier(driver, log), outbox, log }), "rollback_failed");
      assert.equal((await state.readPending())?.targetId, "t2");
      refuse(false);
      assert.equal(await recoverPending({ state, applier: new Applier(driver, log), outbox, log }), "rolled_back");
      assert.equal(await state.readPending(), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an apply whose nft was killed by the timeout (the batch may be committed) puts the snapshot back", async () => {
    const log = memoryLog("error");
    const kernel = new FakeDriver();
    await kernel.apply(fixtureText({ lan: LAN }));
    const before = (await kernel.readTable("inet", "palisade")).rules.length;
    const timeout = () =>
      new NftError("nft_timeout", "nft -f - did not finish within 60000 ms and was killed", { exitCode: null });
    // The kernel took the batch, then nft was killed waiting for the acks.
    let killed = false;
    const driver: Driver = Object.create(kernel);
    driver.apply = async (text) => {
      await kernel.apply(text);
      if (!killed) {
        killed = true;
        throw timeout();
      }
    };
    const out = await new Applier(driver, log).safeApply({
      ...fixtureDesired({ lan: LAN, extra: ["tcp dport 9 drop"] }),
      confirmTimeoutMs: 1000,
      confirmed: async () => true,
    });
    assert.equal(out.status, "failed");
    assert.equal(out.code, "apply_failed");
    assert.match(out.error ?? "", /previous ruleset was restored/);
    assert.equal((await kernel.readTable("inet", "palisade")).rules.length, before, "not left unconfirmed");
  });
});

describe("shutting down", () => {
  it("an apply queued behind one in its confirm window is refused, the kernel untouched; neither waits a window", {
    timeout: 20_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-stopping-"));
    try {
      const log = memoryLog("error");
      const kernel = new FakeDriver();
      await kernel.apply(fixtureText({ lan: LAN })); // v1
      const v1 = await kernel.snapshot();
      const state = await StateDir.open(dir);
      const sent: AgentMessage[] = [];
      const outbox = await Outbox.open(state.path("outbox.json"), (m) => (sent.push(m), true), log);
      const applier = new Applier(kernel, log);
      const versions = [
        fixtureDesired({ lan: LAN, extra: ["tcp dport 9 drop"] }),
        fixtureDesired({ lan: LAN, extra: ["tcp dport 10 drop"] }),
      ];
      let renders = 0;
      const pipeline = new ApplyPipeline(
        {
          state,
          applier,
          drift: new DriftDetector(kernel, applier, log),
          outbox,
          log,
          failsafe: async () => ({ apiAddresses: ["192.0.2.10"], apiPort: 50051 }),
          render: async () => ({ ok: true, ...versions[renders++]! }),
        },
        undefined,
      );
      const desired = (n: number) => ({
        deploymentId: `d${n}`,
        targetId: `t${n}`,
        version: { ruleset: "edge", version: n, checksum: `c${n}` },
        policyJson: "{}",
        confirmTimeoutSeconds: 600, // no Confirm comes; a test that waited for it would time out
        attempt: 0,
      });
      const first = pipeline.apply(desired(2));
      const second = pipeline.apply(desired(3));
      await waitFor(
        () => sent.some((m) => m.applyResult?.status === "APPLY_STATUS_APPLYING"),
        5_000,
        "the first apply in its confirm window",
        10,
      );
      // What the agent's shutdown does (main.ts stopAgent).
      applier.close();
      pipeline.refuseWaiting();
      assert.deepEqual(await Promise.all([first, second]), [false, false]);
      const results = sent.flatMap((m) =>
        m.applyResult ? [[m.applyResult.targetId, m.applyResult.status, m.applyResult.error.split(":")[0]]] : [],
      );
      assert.deepEqual(results, [
        ["t2", "APPLY_STATUS_APPLYING", ""],
        ["t2", "APPLY_STATUS_ROLLED_BACK", "confirm_timeout"],
        ["t3", "APPLY_STATUS_FAILED", "agent_stopping"],
      ]);
      assert.equal(renders, 2);
      assert.equal((await kernel.snapshot()).text, v1.text, "v1 in the kernel, the refused one never applied");
      assert.equal(await state.readPending(), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
