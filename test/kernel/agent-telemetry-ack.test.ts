// A telemetry batch the API received but never acked (a server-side error that does not
// close the stream) is resent on the same stream after the ack timeout, not only after a
// reconnect. Real grpc-js peer in this process that drops the first delivery of a batch.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { memoryLog } from "../../src/runtime/log.ts";
import { openAgentLab, type AgentLab } from "../support/agent-lab.ts";
import { waitFor } from "../support/wait.ts";

const policy = (lan: string) => ({
  accounting: { lan: { prefix: lan } },
  chains: { input: { hook: "input", policy: "accept", rules: [{ action: { type: "account", table: "lan" } }] } },
});

describe("agent telemetry ack timeout (kernel, netns, grpc)", () => {
  let l: AgentLab;

  before(async () => {
    l = await openAgentLab({ name: "agent-ack" });
  });
  after(() => l.close());

  it("resends the oldest unacked batch on the same stream after the ack timeout", async () => {
    const { api, lab, peer } = l;
    const dst = l.link!.b.ip4;
    const lan = l.link!.net4;
    api.autoAck = false; // this replica swallows the first delivery of every batch
    const agent = await l.start(["--name", "edge-a", "--telemetry-ack-timeout", "1"], {
      log: memoryLog("error"),
      heartbeatMs: 200,
    });
    await api.waitFor((r) => r.find((x) => x.msg.hello));
    // Something to report: a policy with accounting, then traffic it counts.
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
    // Heartbeats report the spool's backlog: the unacked batches and their size on disk.
    const spool = join(l.dir, "spool");
    const files = (await readdir(spool)).filter((n) => n.startsWith("b-"));
    let bytes = 0;
    for (const f of files) bytes += (await stat(join(spool, f))).size;
    assert.ok(files.length > 0);
    const reported = api.received.length;
    await api.waitFor(
      (r) =>
        r
          .slice(reported)
          .find(
            (x) =>
              x.msg.heartbeat?.spoolBatches === String(files.length) && x.msg.heartbeat.spoolBytes === String(bytes),
          ),
      10_000,
    );
    // Acking (every batch seen) empties the spool.
    for (const s of new Set(api.of("telemetry").map((x) => x.msg.telemetry.seq as string)))
      api.send({ telemetryAck: { epoch: first.msg.telemetry.epoch, seq: s } });
    // Bounded wait on the spool's state (up to 30 s: the machines are shared and slow).
    const acked = () => [...new Set(api.of("telemetry").map((x) => String(x.msg.telemetry.seq)))].join(", ");
    await waitFor(
      async () => (await l.spooled()).length === 0,
      30_000,
      `acked batches to leave the spool (acked seqs: ${acked()})`,
    );
    const emptied = api.received.length;
    await api.waitFor(
      (r) => r.slice(emptied).find((x) => x.msg.heartbeat?.spoolBatches === "0" && x.msg.heartbeat.spoolBytes === "0"),
      10_000,
    );
  });
});
