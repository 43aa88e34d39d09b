// Start-up recovery (src/agent/recover.ts) from the state a crash leaves behind, written the
// way the agent writes it: the kernel test fleet-confirm-crash.test.ts kills a real agent in
// the confirm window; this one covers the states a kill cannot hit on purpose (between
// recording the commit and removing pending.json; a torn pending.json; a drift baseline of
// another text than applied.json). In-process agent, real gRPC peer, real kernel in a
// throwaway namespace.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { memoryLog } from "../../src/runtime/log.ts";
import { openAgentLab, type AgentLab } from "../support/agent-lab.ts";
import { numericFile } from "../../src/agent/drift.ts";

const policy = (port: number) => ({
  description: `recover ${port}`,
  chains: {
    input: { hook: "input", policy: "accept", rules: [{ match: { protocol: "tcp", dport: port }, action: "drop" }] },
  },
});

describe("agent start-up recovery of a pending apply (kernel, netns, grpc)", () => {
  let l: AgentLab;
  let logs: ReturnType<typeof memoryLog>;
  const list = () => l.list();
  const exists = (f: string) =>
    readFile(join(l.dir, f)).then(
      () => true,
      () => false,
    );
  const start = async (server?: string, extra: string[] = []) => {
    logs = memoryLog("debug");
    await l.start([...extra, "--name", "edge-rec"], { log: logs }, server);
  };
  const stop = () => l.stopAgent();
  const nextStream = () => Math.max(0, ...l.api.received.map((x) => x.stream));

  before(async () => {
    l = await openAgentLab({ name: "agent-recover", pair: false });
    const { api } = l;
    await start();
    await l.api.waitFor((r) => r.find((x) => x.msg.hello));
    api.send({
      desiredState: {
        deploymentId: "d1",
        targetId: "t1",
        version: { ruleset: "edge", version: 1, checksum: "c1" },
        policyJson: JSON.stringify(policy(1111)),
        confirmTimeoutSeconds: 30,
      },
    });
    await l.api.waitFor((r) =>
      r.find((x) => x.msg.applyResult?.targetId === "t1" && x.msg.applyResult.status === "APPLY_STATUS_APPLIED"),
    );
    await l.agent!.applier.exclusive(async () => undefined); // the commit's cleanup runs inside the lock
    assert.equal(await exists("pending.json"), false, "a committed apply leaves no pending.json");
    const applied = JSON.parse(await readFile(join(l.dir, "applied.json"), "utf8"));
    assert.equal(applied.targetId, "t1", "applied.json names the target it answered");
    await stop();
  });
  after(() => l.close());

  it("killed after recording the commit, before removing pending.json: keeps the version and reports APPLIED", async () => {
    // The state a crash right after writing applied.json leaves: pending.json for the same target.
    await writeFile(
      join(l.dir, "pending.json"),
      JSON.stringify({
        deploymentId: "d1",
        targetId: "t1",
        version: { ruleset: "edge", version: 1, checksum: "c1" },
        snapshot: { tables: [], text: "", takenAt: new Date().toISOString() },
        startedAt: new Date().toISOString(),
      }),
    );
    const s = nextStream();
    await start();
    const r = await l.api.waitFor((rs) => rs.find((x) => x.stream > s && x.msg.applyResult?.targetId === "t1"));
    assert.equal(r.msg.applyResult.status, "APPLY_STATUS_APPLIED");
    assert.match(await list(), /dport 1111 drop/, "the committed version is not rolled back");
    assert.equal(await exists("pending.json"), false);
    assert.ok(logs.lines.some((l) => l.msg === "the pending apply was committed before the restart"));
    await stop();
  });

  it("an unreadable pending.json is reported in the log and leaves the kernel alone; the agent runs", async () => {
    await writeFile(join(l.dir, "pending.json"), "{torn");
    const s = nextStream();
    await start();
    await l.api.waitFor((rs) => rs.find((x) => x.stream > s && x.msg.hello));
    assert.ok(
      logs.lines.some((l) => l.level === 50 && /pending.json is unreadable/.test(String(l.msg))),
      JSON.stringify(logs.lines.slice(-5)),
    );
    assert.match(await list(), /dport 1111 drop/);
    await stop();
    await rm(join(l.dir, "pending.json"));
  });

  it("a drift baseline of another text than applied.json is not used (no 'restore' of an uncommitted version)", async () => {
    const file = numericFile(join(l.dir, "drift-baseline.json"));
    const b = JSON.parse(await readFile(file, "utf8"));
    await writeFile(
      file,
      JSON.stringify({ ...b, text: b.text + "\n# another version\n", normalised: { objects: {}, rules: {} } }),
    );
    await start();
    const r = await l.agent!.drift.check({ restore: true });
    assert.deepEqual(r, { drifted: false, details: "no desired state yet", restored: false });
    assert.match(await list(), /dport 1111 drop/);
    await stop();
  });

  it("after a reboot (no Palisade table in the kernel) the last confirmed version is back before the agent reaches the API", async () => {
    await l.lab.nft(l.ns, ["delete", "table", "inet", "palisade"]);
    assert.doesNotMatch(await list(), /dport 1111/);
    // An API that does not answer: nothing but the agent's own state can put the rules back.
    await start("127.0.0.1:9");
    assert.match(
      await list(),
      /dport 1111 drop/,
      "the version in applied.json is in the kernel when startAgent returns",
    );
    assert.ok(logs.lines.some((l) => l.level === 40 && /none of Palisade's tables/.test(String(l.msg))));
    await stop();
    // Tables present: nothing is re-applied at start (that is the drift check's business).
    await start("127.0.0.1:9");
    assert.ok(!logs.lines.some((l) => /none of Palisade's tables/.test(String(l.msg))));
    await stop();
  });

  it("with drift restore off, an empty kernel stays empty at start", async () => {
    await l.lab.nft(l.ns, ["delete", "table", "inet", "palisade"]);
    await start("127.0.0.1:9", ["--drift-restore", "false"]);
    assert.doesNotMatch(await list(), /dport 1111/);
    await stop();
  });
});
