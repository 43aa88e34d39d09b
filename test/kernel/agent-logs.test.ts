// NFLOG log events from a real kernel: a rule sets the packet mark and logs to an
// NFLOG group; the agent's reader (tcpdump pcap stream) yields events with the prefix,
// the mark, interfaces, addresses, protocol, ports and length.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { Applier } from "../../src/agent/apply.ts";
import { memoryLogger } from "../../src/agent/log.ts";
import { LogReader } from "../../src/agent/telemetry/logs.ts";
import type { LogEventMsg } from "../../src/agent/telemetry/batch.ts";
import { fixtureText } from "./agent-fixtures.ts";

describe("agent NFLOG reader (kernel, netns)", () => {
  let lab: NetnsLab;
  let reader: LogReader | undefined;
  before(() => {
    lab = createLab();
  });
  after(async () => {
    await reader?.stop();
    await lab.cleanup();
  });

  it("reads prefix, mark, interface, addresses and ports of logged packets", async () => {
    const { client, server, link } = await lab.pair();
    const group = 40 + (process.pid % 100);
    const applier = new Applier({ netns: server }, memoryLogger());
    const r = await applier.safeApply({ text: fixtureText({ lan: link.net4, logGroup: group }), confirmTimeoutMs: 1000, confirmed: async () => true });
    assert.equal(r.status, "applied");
    const events: LogEventMsg[] = [];
    reader = new LogReader({ groups: [group], netns: server, log: memoryLogger(), onEvents: (e) => events.push(...e) });
    await reader.start();
    await lab.sendUdp(client, link.b.ip4, 7777, { count: 5, size: 40 });
    await lab.sendUdp(client, link.b.ip4, 7000, { count: 3, size: 40 }); // not logged
    for (let i = 0; i < 200 && events.length < 5; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(events.length, 5);
    for (const e of events) {
      assert.equal(e.prefix, "PAL mark: ");
      assert.equal(e.mark, 0x2a);
      assert.equal(e.iif, link.b.ifname);
      assert.equal(e.saddr, link.a.ip4);
      assert.equal(e.daddr, link.b.ip4);
      assert.equal(e.protocol, "udp");
      assert.equal(e.dport, 7777);
      assert.ok(e.sport > 0);
      assert.equal(e.length, 20 + 8 + 40);
      assert.ok(Math.abs(e.unixMs - Date.now()) < 60_000);
    }
  });
});
