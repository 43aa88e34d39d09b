// A telemetry batch the API received but never acked (a server-side error that does not
// close the stream) is resent on the same stream after the ack timeout, not only after a
// reconnect. Real grpc-js peer in this process that drops the first delivery of a batch.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { loadConfig } from "../../src/agent/config.ts";
import { memoryLogger } from "../../src/agent/log.ts";
import { startAgent, type AgentHandle } from "../../src/agent/main.ts";
import { TestApi } from "./agent-grpc-server.ts";

const policy = (lan: string) => ({
  accounting: { lan: { prefix: lan } },
  chains: { input: { hook: "input", policy: "accept", rules: [{ action: { type: "account", table: "lan" } }] } },
});

describe("agent telemetry ack timeout (kernel, netns, grpc)", () => {
  let lab: NetnsLab;
  let ns: string;
  let peer: string;
  let dst: string;
  let lan: string;
  let dir: string;
  let api: TestApi;
  let agent: AgentHandle | undefined;

  before(async () => {
    lab = createLab();
    const p = await lab.pair();
    ns = p.server;
    peer = p.client;
    dst = p.link.b.ip4;
    lan = p.link.net4;
    api = new TestApi();
    await api.start();
    dir = await mkdtemp(join(tmpdir(), "palisade-agent-ack-"));
  });
  after(async () => {
    await agent?.stop().catch(() => undefined);
    await api.stop();
    await lab.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it("resends the oldest unacked batch on the same stream after the ack timeout", async () => {
    api.autoAck = false; // this replica swallows the first delivery of every batch
    const cfg = loadConfig(["--server", `127.0.0.1:${api.port}`, "--enroll-token", "good-token", "--state-dir", dir, "--name", "edge-a", "--netns", ns, "--telemetry-interval", "60", "--drift-interval", "0", "--telemetry-ack-timeout", "1"]);
    agent = await startAgent(cfg, { log: memoryLogger("error"), backoff: { initialMs: 100, maxMs: 300 } });
    await api.waitFor((r) => r.find((x) => x.msg.hello));
    // Something to report: a policy with accounting, then traffic it counts.
    api.send({ desiredState: { deploymentId: "d1", targetId: "t1", version: { ruleset: "edge", version: 1, checksum: "c1" }, policyJson: JSON.stringify(policy(lan)), confirmTimeoutSeconds: 30 } });
    await api.waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === "t1" && x.msg.applyResult.status === "APPLY_STATUS_APPLIED"));
    await lab.sendUdp(peer, dst, 7000, { count: 3, size: 64 });
    await agent.collector.collect();
    const first = await api.waitFor((r) => r.find((x) => x.msg.telemetry));
    const seq = first.msg.telemetry.seq as string;
    const deliveries = () => api.received.filter((x) => x.msg.telemetry?.seq === seq);
    // No ack: the oldest batch comes again on the same stream, with no reconnect in between.
    await api.waitFor(() => deliveries().length >= 2, 10_000);
    assert.deepEqual(
      deliveries().map((x) => x.stream),
      [1, 1],
    );
    assert.equal(agent.client.connects, 1, "resent without a reconnect");
    // Acking (every batch seen) empties the spool.
    for (const s of new Set(api.of("telemetry").map((x) => x.msg.telemetry.seq as string))) api.send({ telemetryAck: { epoch: first.msg.telemetry.epoch, seq: s } });
    // Bounded wait on the spool's state (up to 30 s: the machines are shared and slow).
    let left: string[] = [];
    for (let i = 0; i < 300; i++) {
      left = (await readdir(join(dir, "spool"))).filter((n) => n.startsWith("b-"));
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(left, [], `acked batches leave the spool (acked seqs: ${[...new Set(api.of("telemetry").map((x) => String(x.msg.telemetry.seq)))].join(", ")})`);
  });
});
