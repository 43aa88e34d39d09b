// Quota resets on the Driver interface, on the in-memory FakeDriver (the kernel test
// test/kernel/agent-grow-quota.test.ts proves the same against nft).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Applier } from "../../../src/agent/apply.ts";
import { quotaResetAnswerer, resetQuotaByName } from "../../../src/agent/quota-reset.ts";
import { AgentError } from "../../../src/agent/errors.ts";
import { Outbox } from "../../../src/agent/outbox.ts";
import type { AgentMessage } from "../../../src/protocol/agent.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import { FakeDriver } from "../../support/fake-driver.ts";
import { fixtureDesired, fixtureText } from "../../support/agent-rulesets.ts";

async function kernelWithQuotas() {
  const kernel = new FakeDriver();
  await kernel.apply(fixtureText({ lan: "10.9.0.0/24", growQuota: "bt" }));
  kernel.spend("inet", "palisade", "q1", 5_000);
  kernel.count("inet", "palisade", "quota_bt_grow_bytes", 3, 300);
  kernel.count("inet", "palisade", "udp_seen", 3, 300);
  const counter = async (name: string) =>
    (await kernel.readCounters("inet", "palisade")).find((c) => c.name === name)?.bytes;
  const used = async () => (await kernel.readQuotas("inet", "palisade")).find((q) => q.name === "q1")?.used;
  return { kernel, counter, used };
}

describe("quota reset on the Driver (fake)", () => {
  it("zeroes a quota of that name, or else a growing quota's counter, and nothing else", async () => {
    const { kernel, counter, used } = await kernelWithQuotas();
    assert.equal(await used(), 5_000);
    await resetQuotaByName("palisade", "q1", kernel);
    assert.equal(await used(), 0);
    assert.equal(await counter("quota_bt_grow_bytes"), 300, "the growing quota is another object");
    await resetQuotaByName("palisade", "bt", kernel);
    assert.equal(await counter("quota_bt_grow_bytes"), 0);
    assert.equal(await counter("udp_seen"), 300, "a plain counter is never reset");
  });

  it("an unknown name is refused with unknown_quota and changes nothing", async () => {
    const { kernel, counter, used } = await kernelWithQuotas();
    await assert.rejects(
      resetQuotaByName("palisade", "nope", kernel),
      (e) => e instanceof AgentError && e.code === "unknown_quota" && /nope/.test(e.message),
    );
    assert.equal(await used(), 5_000);
    assert.equal(await counter("quota_bt_grow_bytes"), 300);
  });

  it("answers the API through the outbox: ok, or the reason", async () => {
    const { kernel, used } = await kernelWithQuotas();
    const dir = await mkdtemp(join(tmpdir(), "palisade-quota-reset-"));
    try {
      const sent: AgentMessage[] = [];
      const outbox = await Outbox.open(join(dir, "outbox.json"), (m) => (sent.push(m), true), memoryLog("error"));
      const answer = quotaResetAnswerer({ driver: kernel, exclusive: <T>(fn: () => Promise<T>) => fn() }, outbox);
      await answer({ requestId: "r1", name: "q1" });
      await answer({ requestId: "r2", name: "nope" });
      const answers = sent.flatMap((m) => (m.quotaReset ? [m.quotaReset] : []));
      assert.deepEqual(
        answers.map((a) => [a.requestId, a.ok]),
        [
          ["r1", true],
          ["r2", false],
        ],
      );
      assert.match(answers[1]!.error, /unknown_quota|no quota "nope"/);
      assert.equal(await used(), 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a reset waits for an apply holding the applier's lock, so its rollback cannot undo it", async () => {
    const { kernel, used } = await kernelWithQuotas();
    const dir = await mkdtemp(join(tmpdir(), "palisade-quota-reset-"));
    try {
      const sent: AgentMessage[] = [];
      const log = memoryLog("error");
      const outbox = await Outbox.open(join(dir, "outbox.json"), (m) => (sent.push(m), true), log);
      const applier = new Applier(kernel, log);
      let confirm!: (ok: boolean) => void;
      let waiting!: () => void;
      const inWindow = new Promise<void>((r) => (waiting = r));
      // A new chain priority: the tables are replaced, q1's usage carried into them.
      const apply = applier.safeApply({
        ...fixtureDesired({ lan: "10.9.0.0/24", growQuota: "bt", priority: 10 }),
        confirmTimeoutMs: 60_000,
        confirmed: () => {
          waiting();
          return new Promise<boolean>((r) => (confirm = r));
        },
      });
      await inWindow;
      const reset = quotaResetAnswerer(
        { driver: kernel, exclusive: (fn) => applier.exclusive(fn) },
        outbox,
      )({
        requestId: "r1",
        name: "q1",
      });
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(sent.length, 0, "not answered while the apply holds the lock");
      assert.equal(await used(), 5_000);
      // No Confirm: the rollback puts back the snapshot's tables, q1's usage (5000) with them.
      confirm(false);
      const out = await apply;
      assert.deepEqual([out.status, out.mode], ["rolled_back", "carry"]);
      await reset;
      assert.deepEqual(
        sent.map((m) => [m.quotaReset?.requestId, m.quotaReset?.ok]),
        [["r1", true]],
      );
      assert.equal(await used(), 0, "reset after the rollback, not undone by it");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a request sent again (after a reconnect's Hello) is not run again: waiting, answered, or after a restart", async () => {
    const { kernel, used } = await kernelWithQuotas();
    const dir = await mkdtemp(join(tmpdir(), "palisade-quota-reset-"));
    try {
      const sent: AgentMessage[] = [];
      const log = memoryLog("error");
      const file = join(dir, "outbox.json");
      const outbox = await Outbox.open(file, (m) => (sent.push(m), true), log);
      const applier = new Applier(kernel, log);
      const answer = quotaResetAnswerer({ driver: kernel, exclusive: (fn) => applier.exclusive(fn) }, outbox);
      // Both arrive while an apply holds the lock (the stream reconnected meanwhile).
      let release!: () => void;
      let entered!: () => void;
      const inLock = new Promise<void>((r) => (entered = r));
      const held = applier.exclusive(
        () =>
          new Promise<void>((r) => {
            release = r;
            entered();
          }),
      );
      await inLock;
      const first = answer({ requestId: "r1", name: "q1" });
      const again = answer({ requestId: "r1", name: "q1" });
      release();
      await Promise.all([held, first, again]);
      assert.equal(await used(), 0);
      // Usage counted after the reset, then the request once more, its answer not acked yet.
      kernel.spend("inet", "palisade", "q1", 300);
      await answer({ requestId: "r1", name: "q1" });
      assert.equal(await used(), 300, "the usage since the reset is kept");
      // A restarted agent: its outbox still holds the answer.
      const reopened = await Outbox.open(file, () => true, log);
      await quotaResetAnswerer({ driver: kernel, exclusive: (fn) => fn() }, reopened)({ requestId: "r1", name: "q1" });
      assert.equal(await used(), 300);
      assert.deepEqual(
        sent.map((m) => [m.quotaReset?.requestId, m.quotaReset?.ok]),
        [["r1", true]],
        "one answer",
      );
      // Once acked, a new request (another id) resets as usual.
      await outbox.ack(sent[0]!.quotaReset!.resultId);
      await answer({ requestId: "r2", name: "q1" });
      assert.equal(await used(), 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
