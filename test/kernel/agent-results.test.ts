// Results are never lost (src/agent/outbox.ts): an ApplyResult produced while the stream
// is down is kept in the state dir and arrives on the next stream, right after Hello —
// also when the agent restarts in between (a new process on the same state dir); one the
// server received but never acked (ResultAck) goes again, same result_id. Real
// grpc-js peers in this process (the "replica" goes away and comes back on the same
// port), real kernel in a throwaway namespace.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { memoryLog } from "../../src/runtime/log.ts";
import { openAgentLab, type AgentLab } from "../support/agent-lab.ts";
import { TestApi } from "../support/test-api.ts";

const BIN = join(import.meta.dirname, "../../bin/palisade");

const policy = (lan: string, extraPort?: number) => ({
  accounting: { lan: { prefix: lan } },
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { action: { type: "account", table: "lan" } },
        ...(extraPort ? [{ match: { protocol: "tcp", dport: extraPort }, action: "drop" }] : []),
      ],
    },
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("agent results survive a lost stream and a restart (kernel, netns, grpc)", () => {
  let l: AgentLab;
  let ns: string;
  let lan: string;
  let dir: string;
  let port: number;
  const apis: TestApi[] = [];
  const children: ChildProcess[] = [];

  const newApi = async (p = 0) => {
    const a = new TestApi();
    await a.start(p);
    apis.push(a);
    return a;
  };
  const list = () => l.list();
  const outbox = async () => readFile(join(dir, "outbox.json"), "utf8").catch(() => "");
  /** Bounded poll of a condition that the agent reaches by itself. */
  const until = async (what: string, pred: () => Promise<boolean>, tries = 150) => {
    for (let i = 0; i < tries; i++) {
      if (await pred()) return;
      await sleep(100);
    }
    assert.fail(`timed out waiting for ${what}`);
  };
  const exited = (c: ChildProcess) =>
    new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once("exit", (code) => r(code))));

  before(async () => {
    l = await openAgentLab({ name: "agent-results" });
    ({ ns, dir } = l);
    lan = l.link!.net4;
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const a of apis) await a.stop();
    await l.close();
  });

  it("a rollback that happens while the API is unreachable is reported on the next stream, right after Hello", async () => {
    const api = l.api;
    port = api.port;
    const _agent = await l.start(["--name", "edge-r"]);
    await api.waitFor((r) => r.find((x) => x.msg.hello));
    api.send({
      desiredState: {
        deploymentId: "d1",
        targetId: "t1",
        version: { ruleset: "edge", version: 1, checksum: "c1" },
        policyJson: JSON.stringify(policy(lan)),
        confirmTimeoutSeconds: 30,
      },
    });
    await api.waitFor((r) =>
      r.find((x) => x.msg.applyResult?.targetId === "t1" && x.msg.applyResult.status === "APPLY_STATUS_APPLIED"),
    );

    api.autoConfirm = false;
    api.send({
      desiredState: {
        deploymentId: "d2",
        targetId: "t2",
        version: { ruleset: "edge", version: 2, checksum: "c2" },
        policyJson: JSON.stringify(policy(lan, 2222)),
        confirmTimeoutSeconds: 2,
      },
    });
    assert.equal(
      (await api.waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t2"))).msg.applyResult.status,
      "APPLY_STATUS_APPLYING",
    );
    assert.match(await list(), /dport 2222 drop/);
    // The replica goes away before the confirm timeout: the agent rolls back on its own.
    await api.stop();
    await until("the rollback in the kernel", async () => !/dport 2222/.test(await list()));
    await until("the ROLLED_BACK result kept in the state dir", async () =>
      /APPLY_STATUS_ROLLED_BACK/.test(await outbox()),
    );
    assert.equal(
      api.received.filter((x) => x.msg.applyResult?.targetId === "t2").length,
      1,
      "only APPLYING reached the old stream",
    );

    const back = await newApi(port);
    const rolled = await back.waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t2"));
    assert.equal(rolled.msg.applyResult.status, "APPLY_STATUS_ROLLED_BACK");
    assert.match(rolled.msg.applyResult.error, /confirm_timeout/);
    const helloAt = back.received.findIndex((x) => x.stream === rolled.stream && x.msg.hello);
    assert.ok(helloAt >= 0 && helloAt < back.received.indexOf(rolled), "sent after Hello on the new stream");
    await until("the outbox emptied", async () => !/ROLLED_BACK/.test(await outbox()));
    await l.stopAgent();
    await back.stop();
  });

  it("a shutdown's rollback is kept across an agent restart (new process, same state dir)", async () => {
    const api = await newApi(port);
    api.autoConfirm = false;
    const argv = [
      BIN,
      "agent",
      "--server",
      `127.0.0.1:${port}`,
      "--state-dir",
      dir,
      "--name",
      "edge-r",
      "--netns",
      ns,
      "--telemetry-interval",
      "60",
      "--drift-interval",
      "0",
      "--log-level",
      "warn",
    ];
    const first = spawn(process.execPath, argv, { stdio: ["ignore", "ignore", "pipe"] });
    children.push(first);
    let err1 = "";
    first.stderr!.on("data", (d: Buffer) => (err1 += d.toString()));
    await api.waitFor((r) => r.find((x) => x.msg.hello), 30_000);
    api.send({
      desiredState: {
        deploymentId: "d3",
        targetId: "t3",
        version: { ruleset: "edge", version: 3, checksum: "c3" },
        policyJson: JSON.stringify(policy(lan, 3333)),
        confirmTimeoutSeconds: 120,
      },
    });
    assert.equal(
      (await api.waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t3"))).msg.applyResult.status,
      "APPLY_STATUS_APPLYING",
    );
    assert.match(await list(), /dport 3333 drop/);
    await api.stop();
    // Shutting down while unconfirmed rolls back; the stream is gone, so the result waits on disk.
    first.kill("SIGTERM");
    assert.equal(await exited(first), 0, err1);
    assert.doesNotMatch(await list(), /dport 3333/);
    assert.match(await outbox(), /"targetId":"t3".*APPLY_STATUS_ROLLED_BACK/);

    const back = await newApi(port);
    const second = spawn(process.execPath, argv, { stdio: ["ignore", "ignore", "pipe"] });
    children.push(second);
    let err2 = "";
    second.stderr!.on("data", (d: Buffer) => (err2 += d.toString()));
    const rolled = await back
      .waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t3"), 30_000)
      .catch((e: Error) => assert.fail(`${e.message}\n${err2}`));
    assert.equal(rolled.msg.applyResult.status, "APPLY_STATUS_ROLLED_BACK");
    assert.match(rolled.msg.applyResult.error, /confirm_timeout/);
    second.kill("SIGTERM");
    assert.equal(await exited(second), 0, err2);
  });

  it("a result the server received but did not ack before its stream closed is resent on the next stream, same result_id", async () => {
    const api = await newApi();
    api.autoAckResults = false;
    await l.start(["--name", "edge-r"], { log: memoryLog("warn") }, `127.0.0.1:${api.port}`);
    await api.waitFor((r) => r.find((x) => x.msg.hello));
    api.send({
      desiredState: {
        deploymentId: "d5",
        targetId: "t5",
        version: { ruleset: "edge", version: 5, checksum: "c5" },
        policyJson: JSON.stringify(policy(lan, 5555)),
        confirmTimeoutSeconds: 30,
      },
    });
    // APPLYING earns the Confirm; APPLIED follows once the agent recorded the commit.
    const first = await api.waitFor((r) =>
      r.find((x) => x.msg.applyResult?.targetId === "t5" && x.msg.applyResult.status === "APPLY_STATUS_APPLIED"),
    );
    const id = first.msg.applyResult.resultId as string;
    assert.match(id, /^[0-9a-f-]{36}$/);
    // Confirmed (the apply stays), but the result is never acked: the stream closes first.
    await until("the confirmed apply", async () => /dport 5555 drop/.test(await list()));
    assert.match(await outbox(), new RegExp(id));
    api.cut();

    const again = await api.waitFor((r) =>
      r.find((x) => x.stream > first.stream && x.msg.applyResult?.resultId === id),
    );
    assert.equal(again.msg.applyResult.resultId, id, "the same result, not a new one");
    assert.equal(again.msg.applyResult.status, "APPLY_STATUS_APPLIED");
    const helloAt = api.received.findIndex((x) => x.stream === again.stream && x.msg.hello);
    assert.ok(helloAt >= 0 && helloAt < api.received.indexOf(again), "resent after Hello on the new stream");
    assert.equal(
      api.received.filter((x) => x.stream === again.stream && x.msg.applyResult?.resultId === id).length,
      1,
      "once per stream",
    );
    assert.match(await outbox(), new RegExp(id), "still kept: not acked yet");

    // Now the server acks: the entry goes, and no later stream carries it.
    for (const x of api.received.filter((x) => x.msg.applyResult?.targetId === "t5"))
      api.send({ resultAck: { resultId: x.msg.applyResult.resultId } });
    await until("the outbox emptied", async () => !(await outbox()).includes(id));
    await l.stopAgent();
    await api.stop();
  });
});
