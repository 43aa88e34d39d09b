// The whole agent (startAgent) against a real gRPC peer in this process, managing a
// throwaway namespace: enroll, hello, desired state -> applied + confirm, a version
// without confirm -> rolled_back, telemetry batches acked and resent after a cut
// stream, drift on demand, quota reset, bad enrollment token.

import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { loadConfig } from "../../src/agent/config.ts";
import { startAgent, type AgentHandle } from "../../src/agent/main.ts";
import { memoryLogger } from "../../src/agent/log.ts";
import { StateDir } from "../../src/agent/state.ts";
import { readQuota } from "../../src/engine/driver/index.ts";
import { TestApi } from "./agent-grpc-server.ts";

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

const agentLog = memoryLogger("warn");
const stripCounters = (s: string) => s.replace(/packets \d+ bytes \d+/g, "").replace(/used \d+ bytes/g, "").replace(/elements = \{[^}]*\}/g, "");

describe("agent end to end with a gRPC peer (kernel, netns)", () => {
  let lab: NetnsLab;
  let api: TestApi;
  let agent: AgentHandle | undefined;
  let dir: string;
  let ns: string;
  let peer: string;
  let dst: string;
  let lan: string;
  let src: string;

  before(async () => {
    lab = createLab();
    const p = await lab.pair();
    ns = p.server;
    peer = p.client;
    dst = p.link.b.ip4;
    lan = p.link.net4;
    src = p.link.a.ip4;
    api = new TestApi();
    await api.start();
    dir = await mkdtemp(join(tmpdir(), "palisade-agent-e2e-"));
  });
  after(async () => {
    await agent?.stop();
    await api.stop();
    await lab.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const list = async () => (await lab.nft(ns, ["list", "table", "inet", "palisade"], undefined, { allowFailure: true })).stdout;

  it("refuses to start with a bad enrollment token", async () => {
    const bad = await mkdtemp(join(tmpdir(), "palisade-agent-bad-"));
    try {
      const cfg = loadConfig(["--server", `127.0.0.1:${api.port}`, "--enroll-token", "wrong", "--state-dir", bad, "--netns", ns, "--drift-interval", "0"]);
      await assert.rejects(startAgent(cfg, { log: memoryLogger() }), (e: Error & { code?: string }) => e.code === "enroll_failed" && /bad enrollment token/.test(e.message));
    } finally {
      await rm(bad, { recursive: true, force: true });
    }
  });

  it("enrolls, keeps its credential 0600, and says hello with capabilities and epoch", async () => {
    const cfg = loadConfig(["--server", `127.0.0.1:${api.port}`, "--enroll-token", "good-token", "--state-dir", dir, "--name", "edge-1", "--netns", ns, "--telemetry-interval", "1", "--drift-interval", "0"]);
    agent = await startAgent(cfg, { log: agentLog, backoff: { initialMs: 100, maxMs: 400 }, heartbeatMs: 500 });
    const hello = await api.waitFor((r) => r.find((x) => x.msg.hello));
    assert.equal(hello.metadata.get("authorization")[0], "Bearer cred-secret-1");
    assert.equal(api.enrolls[api.enrolls.length - 1]?.name, "edge-1");
    const state = new StateDir(dir);
    assert.equal(await state.credentialMode(), 0o600);
    assert.equal(hello.msg.hello.telemetryEpoch, await state.epoch());
    // The version the machine's own nft reports, not a literal: any Debian may ship another.
    const nftVersion = /v(\d+\.\d+\.\d+)/.exec(spawnSync("nft", ["--version"], { encoding: "utf8" }).stdout)?.[1];
    assert.ok(nftVersion, "nft --version names a version");
    assert.equal(hello.msg.hello.capabilities.nftVersion, nftVersion);
    assert.ok(hello.msg.hello.capabilities.features.length > 0);
    await api.waitFor((r) => r.some((x) => x.msg.heartbeat));
  });

  it("applies desired state, reports APPLIED, and keeps it once confirmed", async () => {
    api.send({ desiredState: { deploymentId: "d1", targetId: "t1", version: { ruleset: "edge", version: 1, checksum: "c1" }, policyJson: JSON.stringify(policy(lan)), confirmTimeoutSeconds: 2 } });
    // APPLYING (kernel holds it) earns the Confirm; APPLIED follows once the commit is recorded.
    const res = await api.waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t1" && x.msg.applyResult.status !== "APPLY_STATUS_APPLYING"));
    assert.equal(res.msg.applyResult.status, "APPLY_STATUS_APPLIED", res.msg.applyResult.error);
    await new Promise((r) => setTimeout(r, 2500)); // past the confirm timeout
    assert.deepEqual(api.of("applyResult").filter((x) => x.msg.applyResult.targetId === "t1").map((x) => x.msg.applyResult.status), ["APPLY_STATUS_APPLYING", "APPLY_STATUS_APPLIED"], "no rollback after the confirm");
    assert.match(await list(), /acct_lan_src/);
  });

  it("ships telemetry batches that are acked, and resends unacked ones in order after a cut stream", async () => {
    await lab.sendUdp(peer, dst, 7000, { count: 10, size: 72 });
    const first = await api.waitFor((r) => r.find((x) => x.msg.telemetry?.accounting?.some((a: { ip: string }) => a.ip === src)));
    assert.equal(first.msg.telemetry.epoch, await new StateDir(dir).epoch());
    await new Promise((r) => setTimeout(r, 300));
    api.autoAck = false;
    const mark = api.received.length;
    await lab.sendUdp(peer, dst, 7000, { count: 5, size: 72 });
    const unacked = await api.waitFor((r) => r.slice(mark).find((x) => x.msg.telemetry && x.stream === 1)?.msg.telemetry.seq);
    const connectsBefore = agent!.client.connects;
    api.autoAck = true; // the replica the agent reconnects to acks what it receives
    api.cut();
    const resent = await api.waitFor((r) => r.find((x) => x.stream === 2 && x.msg.telemetry));
    assert.ok(agent!.client.connects > connectsBefore, "reconnected");
    assert.equal(resent.msg.telemetry.seq, unacked, "the oldest unacked batch is resent first");
    const hello2 = api.received.find((x) => x.stream === 2 && x.msg.hello);
    assert.equal(hello2?.msg.hello.applied.version, 1);
    // Sum over distinct seqs (the API ingests each once): the sender's 15 datagrams from one address.
    const bySeq = new Map<string, Record<string, any>>(); // eslint-disable-line @typescript-eslint/no-explicit-any
    await api.waitFor((r) => {
      for (const x of r) if (x.msg.telemetry) bySeq.set(x.msg.telemetry.seq, x.msg.telemetry);
      let p = 0;
      for (const b of bySeq.values()) for (const a of b.accounting) if (a.ip === src) p += Number(a.srcPackets);
      return p === 15;
    });
    // Acks remove spooled batches (bounded wait: the last batch's ack is in flight).
    let left = -1;
    for (let i = 0; i < 50 && left !== 0; i++) {
      left = (await readdir(join(dir, "spool"))).filter((n) => n.startsWith("b-")).length;
      if (left !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(left, 0);
  });

  it("rolls back a version the API never confirms and reports ROLLED_BACK", async () => {
    const before = stripCounters(await list());
    api.autoConfirm = false;
    api.send({ desiredState: { deploymentId: "d2", targetId: "t2", version: { ruleset: "edge", version: 2, checksum: "c2" }, policyJson: JSON.stringify(policy(lan, 2222)), confirmTimeoutSeconds: 2 } });
    const applied = await api.waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t2"));
    assert.equal(applied.msg.applyResult.status, "APPLY_STATUS_APPLYING");
    assert.match(await list(), /dport 2222 drop/);
    const rolled = await api.waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t2" && x.msg.applyResult.status !== "APPLY_STATUS_APPLYING"), 8000);
    assert.equal(rolled.msg.applyResult.status, "APPLY_STATUS_ROLLED_BACK");
    assert.match(rolled.msg.applyResult.error, /confirm_timeout/);
    assert.equal(stripCounters(await list()), before);
    api.autoConfirm = true;
  });

  it("reports a policy that does not validate as FAILED without touching the kernel", async () => {
    const before = stripCounters(await list());
    api.send({ desiredState: { deploymentId: "d3", targetId: "t3", version: { ruleset: "edge", version: 3, checksum: "c3" }, policyJson: JSON.stringify({ chains: { input: { hook: "nope" } } }), confirmTimeoutSeconds: 2 } });
    const r = await api.waitFor((x) => x.find((m) => m.msg.applyResult?.targetId === "t3"));
    assert.equal(r.msg.applyResult.status, "APPLY_STATUS_FAILED");
    assert.match(r.msg.applyResult.error, /invalid_policy/);
    assert.equal(stripCounters(await list()), before);
  });

  it("checks drift on demand and restores it", async () => {
    await lab.nft(ns, ["add", "rule", "inet", "palisade", "input", "tcp", "dport", "23", "drop"]);
    api.send({ checkDrift: {} });
    const d = await api.waitFor((r) => r.find((x) => x.msg.drift));
    assert.equal(d.msg.drift.drifted, true);
    assert.equal(d.msg.drift.restored, true);
    assert.doesNotMatch(await list(), /dport 23 drop/);
  });

  it("resets a quota on request", async () => {
    assert.ok((await readQuota("inet", "palisade", "q1", { netns: ns })).used > 0);
    api.send({ quotaReset: { requestId: "r1", name: "q1" } });
    const q = await api.waitFor((r) => r.find((x) => x.msg.quotaReset));
    assert.deepEqual([q.msg.quotaReset.requestId, q.msg.quotaReset.ok], ["r1", true]);
    assert.equal((await readQuota("inet", "palisade", "q1", { netns: ns })).used, 0);
  });
});
