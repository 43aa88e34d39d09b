// The whole agent (startAgent) against a real gRPC peer in this process, managing a
// throwaway namespace: enroll, hello, desired state -> applied + confirm, a version
// without confirm -> rolled_back, telemetry batches acked and resent after a cut
// stream, drift on demand, quota reset, bad enrollment token.

import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/agent/config.ts";
import { startAgent } from "../../src/agent/main.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { StateDir } from "../../src/agent/state.ts";
import { readQuota } from "../../src/engine/driver/index.ts";
import { openAgentLab, type AgentLab } from "../support/agent-lab.ts";
import { serialOf } from "../support/cert-serial.ts";
import { waitFor } from "../support/wait.ts";

const policy = (lan: string, extraPort?: number) => ({
  accounting: { lan: { prefix: lan } },
  quotas: { q1: { mode: "bytes", limit: 5_000_000 } },
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { action: { type: "account", table: "lan" } },
        { match: { quota: { name: "q1" } }, action: "accept" },
        ...(extraPort ? [{ match: { protocol: "tcp", dport: extraPort }, action: "drop" }] : []),
      ],
    },
  },
});

const agentLog = memoryLog("info");
const stripCounters = (s: string) =>
  s
    .replace(/packets \d+ bytes \d+/g, "")
    .replace(/used \d+ bytes/g, "")
    .replace(/elements = \{[^}]*\}/g, "");

describe("agent end to end with a gRPC peer (kernel, netns)", () => {
  let l: AgentLab;
  let ns: string;
  let peer: string;
  let dst: string;
  let lan: string;
  let src: string;

  before(async () => {
    l = await openAgentLab({ name: "agent-e2e" });
    ({ ns, peer } = l);
    dst = l.link!.b.ip4;
    lan = l.link!.net4;
    src = l.link!.a.ip4;
  });
  after(() => l.close());

  it("refuses to start with a bad enrollment token", async () => {
    const bad = await mkdtemp(join(tmpdir(), "palisade-agent-bad-"));
    try {
      const cfg = loadConfig([
        "--server",
        `127.0.0.1:${l.api.port}`,
        ...l.api.enrollArgs().map((a) => (a === l.api.token ? a.replace(/^good-token/, "wrong") : a)),
        "--state-dir",
        bad,
        "--netns",
        ns,
        "--drift-interval",
        "0",
      ]);
      await assert.rejects(
        startAgent(cfg, { log: memoryLog() }),
        (e: Error & { code?: string }) => e.code === "enroll_failed" && /bad enrollment token/.test(e.message),
      );
    } finally {
      await rm(bad, { recursive: true, force: true });
    }
  });

  it("enrolls, keeps its credential 0600, and says hello with capabilities and epoch", async () => {
    await l.start(["--name", "edge-1", "--telemetry-interval", "1"], {
      log: agentLog,
      backoff: { initialMs: 100, maxMs: 400 },
    });
    const hello = await l.api.waitFor((r) => r.find((x) => x.msg.hello));
    // Mutual TLS: the stream is authenticated by the enrolled certificate, no bearer credential is sent.
    assert.deepEqual(hello.metadata.get("authorization"), []);
    const cert = (await new StateDir(l.dir).readTls())?.certPem;
    assert.ok(cert, "the agent stored its key and certificate (tls.json)");
    assert.equal(hello.certSerial, serialOf(cert));
    assert.equal(l.api.enrolls[l.api.enrolls.length - 1]?.name, "edge-1");
    const state = new StateDir(l.dir);
    assert.equal(await state.credentialMode(), 0o600);
    assert.equal(hello.msg.hello.telemetryEpoch, await state.epoch());
    // The version the machine's own nft reports, not a literal: any Debian may ship another.
    const nftVersion = /v(\d+\.\d+\.\d+)/.exec(spawnSync("nft", ["--version"], { encoding: "utf8" }).stdout)?.[1];
    assert.ok(nftVersion, "nft --version names a version");
    assert.equal(hello.msg.hello.capabilities.nftVersion, nftVersion);
    assert.ok(hello.msg.hello.capabilities.features.length > 0);
    await l.api.waitFor((r) => r.some((x) => x.msg.heartbeat));
  });

  it("applies desired state, reports APPLIED, and keeps it once confirmed", async () => {
    l.api.send({
      desiredState: {
        deploymentId: "d1",
        targetId: "t1",
        version: { ruleset: "edge", version: 1, checksum: "c1" },
        policyJson: JSON.stringify(policy(lan)),
        confirmTimeoutSeconds: 2,
      },
    });
    // APPLYING (kernel holds it) earns the Confirm; APPLIED follows once the commit is recorded.
    const res = await l.api.waitFor((r) =>
      r.find((x) => x.msg.applyResult?.targetId === "t1" && x.msg.applyResult.status !== "APPLY_STATUS_APPLYING"),
    );
    assert.equal(res.msg.applyResult.status, "APPLY_STATUS_APPLIED", res.msg.applyResult.error);
    // No rollback can follow: the Confirm ended the wait (its timer cleared, "apply confirmed"),
    // the commit is recorded (applied.json names t1) and the way back is gone (pending.json).
    await l.agent!.applier.exclusive(async () => undefined); // the commit's cleanup runs inside the lock
    assert.equal(
      await stat(join(l.dir, "pending.json")).then(
        () => true,
        () => false,
      ),
      false,
      "pending.json removed after the commit",
    );
    assert.ok(
      agentLog.lines.some((x) => x.msg === "apply confirmed"),
      "the confirm path was taken",
    );
    assert.ok(
      !agentLog.lines.some((x) => /no confirmation within the timeout/.test(String(x.msg))),
      "no confirm timeout",
    );
    assert.equal((await new StateDir(l.dir).readApplied())?.targetId, "t1");
    assert.deepEqual(
      l.api
        .of("applyResult")
        .filter((x) => x.msg.applyResult.targetId === "t1")
        .map((x) => x.msg.applyResult.status),
      ["APPLY_STATUS_APPLYING", "APPLY_STATUS_APPLIED"],
      "no rollback after the confirm",
    );
    assert.match(await l.list(), /acct_lan_src/);
  });

  it("ships telemetry batches that are acked, and resends unacked ones in order after a cut stream", async () => {
    await l.lab.sendUdp(peer, dst, 7000, { count: 10, size: 72 });
    const first = await l.api.waitFor((r) =>
      r.find((x) => x.msg.telemetry?.accounting?.some((a: { ip: string }) => a.ip === src)),
    );
    assert.equal(first.msg.telemetry.epoch, await new StateDir(l.dir).epoch());
    // The first batch's ack has reached the agent (it left the spool) before acks stop.
    await waitFor(
      async () => !(await l.spooled()).includes(Number(first.msg.telemetry.seq)),
      10_000,
      "the first batch acked",
    );
    l.api.autoAck = false;
    const mark = l.api.received.length;
    await l.lab.sendUdp(peer, dst, 7000, { count: 5, size: 72 });
    const unacked = await l.api.waitFor(
      (r) => r.slice(mark).find((x) => x.msg.telemetry && x.stream === 1)?.msg.telemetry.seq,
    );
    const connectsBefore = l.agent!.client.connects;
    l.api.autoAck = true; // the replica the agent reconnects to acks what it receives
    l.api.cut();
    const resent = await l.api.waitFor((r) => r.find((x) => x.stream === 2 && x.msg.telemetry));
    assert.ok(l.agent!.client.connects > connectsBefore, "reconnected");
    assert.equal(resent.msg.telemetry.seq, unacked, "the oldest unacked batch is resent first");
    const hello2 = l.api.received.find((x) => x.stream === 2 && x.msg.hello);
    assert.equal(hello2?.msg.hello.applied.version, 1);
    // Sum over distinct seqs (the API ingests each once): the sender's 15 datagrams from one address.
    const bySeq = new Map<string, Record<string, any>>(); // eslint-disable-line @typescript-eslint/no-explicit-any
    await l.api.waitFor((r) => {
      for (const x of r) if (x.msg.telemetry) bySeq.set(x.msg.telemetry.seq, x.msg.telemetry);
      let p = 0;
      for (const b of bySeq.values()) for (const a of b.accounting) if (a.ip === src) p += Number(a.srcPackets);
      return p === 15;
    });
    // Acks remove spooled batches (bounded wait: the last batch's ack is in flight).
    await waitFor(async () => (await l.spooled()).length === 0, 10_000, "acked batches leave the spool");
  });

  it("rolls back a version the API never confirms and reports ROLLED_BACK", async () => {
    const before = stripCounters(await l.list());
    l.api.autoConfirm = false;
    l.api.send({
      desiredState: {
        deploymentId: "d2",
        targetId: "t2",
        version: { ruleset: "edge", version: 2, checksum: "c2" },
        policyJson: JSON.stringify(policy(lan, 2222)),
        confirmTimeoutSeconds: 2,
      },
    });
    const applied = await l.api.waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t2"));
    assert.equal(applied.msg.applyResult.status, "APPLY_STATUS_APPLYING");
    assert.match(await l.list(), /dport 2222 drop/);
    const rolled = await l.api.waitFor(
      (r) =>
        r.find((x) => x.msg.applyResult?.targetId === "t2" && x.msg.applyResult.status !== "APPLY_STATUS_APPLYING"),
      8000,
    );
    assert.equal(rolled.msg.applyResult.status, "APPLY_STATUS_ROLLED_BACK");
    assert.match(rolled.msg.applyResult.error, /confirm_timeout/);
    assert.equal(stripCounters(await l.list()), before);
    l.api.autoConfirm = true;
  });

  it("reports a policy that does not validate as FAILED without touching the kernel", async () => {
    const before = stripCounters(await l.list());
    l.api.send({
      desiredState: {
        deploymentId: "d3",
        targetId: "t3",
        version: { ruleset: "edge", version: 3, checksum: "c3" },
        policyJson: JSON.stringify({ chains: { input: { hook: "nope" } } }),
        confirmTimeoutSeconds: 2,
      },
    });
    const r = await l.api.waitFor((x) => x.find((m) => m.msg.applyResult?.targetId === "t3"));
    assert.equal(r.msg.applyResult.status, "APPLY_STATUS_FAILED");
    assert.match(r.msg.applyResult.error, /invalid_policy/);
    assert.equal(stripCounters(await l.list()), before);
  });

  it("checks drift on demand and restores it", async () => {
    await l.lab.nft(ns, ["add", "rule", "inet", "palisade", "input", "tcp", "dport", "23", "drop"]);
    l.api.send({ checkDrift: {} });
    const d = await l.api.waitFor((r) => r.find((x) => x.msg.drift));
    assert.equal(d.msg.drift.drifted, true);
    assert.equal(d.msg.drift.restored, true);
    assert.doesNotMatch(await l.list(), /dport 23 drop/);
  });

  it("resets a quota on request", async () => {
    assert.ok((await readQuota("inet", "palisade", "q1", { netns: ns })).used > 0);
    l.api.send({ quotaReset: { requestId: "r1", name: "q1" } });
    const q = await l.api.waitFor((r) => r.find((x) => x.msg.quotaReset));
    assert.deepEqual([q.msg.quotaReset.requestId, q.msg.quotaReset.ok], ["r1", true]);
    assert.equal((await readQuota("inet", "palisade", "q1", { netns: ns })).used, 0);
  });
});
