// NFLOG log events from a real kernel: a rule sets the packet mark and logs to an
// NFLOG group; the agent's reader (tcpdump pcap stream) yields events with the prefix,
// the mark, interfaces, addresses, protocol, ports and length. This kernel's NFLOG carries
// no conntrack data, so the ct mark comes from the agent's `conntrack -G` lookup (a policy
// with LOGMARK and `ct mark set 0x7`); its cache and rate cap are checked with a fake run.

import { nftDriver } from "../../src/engine/driver/index.ts";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { Applier } from "../../src/agent/apply.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { LogReader } from "../../src/agent/telemetry/logs.ts";
import type { LogEvent } from "../../src/protocol/agent.ts";
import { fixtureText } from "../support/agent-rulesets.ts";
import { applyPolicy } from "../support/nft-lab.ts";
import { conntrackArgs, CtMarkLookup, parseCtMark } from "../../src/agent/telemetry/ctmark.ts";

describe("agent NFLOG reader (kernel, netns)", () => {
  let lab: NetnsLab;
  let reader: LogReader | undefined;
  let reader2: LogReader | undefined;
  before(() => {
    lab = createLab();
  });
  after(async () => {
    try {
      await reader?.stop();
      await reader2?.stop();
    } finally {
      await lab.cleanup();
    }
  });

  it("reads prefix, mark, interface, addresses and ports of logged packets", async () => {
    const { client, server, link } = await lab.pair();
    const group = 40 + (process.pid % 100);
    const applier = new Applier(nftDriver({ netns: server }), memoryLog());
    const r = await applier.safeApply({
      text: fixtureText({ lan: link.net4, logGroup: group }),
      confirmTimeoutMs: 1000,
      confirmed: async () => true,
    });
    assert.equal(r.status, "applied");
    const events: LogEvent[] = [];
    reader = new LogReader({ groups: [group], netns: server, log: memoryLog(), onEvents: (e) => events.push(...e) });
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
      assert.ok(Math.abs(Number(e.unixMs) - Date.now()) < 60_000);
    }
  });

  it("LOGMARK events carry the packet mark and the ct mark (conntrack lookup by tuple)", async () => {
    const { client, server, link } = await lab.pair();
    const group = 20 + (process.pid % 20);
    await applyPolicy(lab, server, {
      chains: {
        mangle_in: {
          table: "mangle",
          hook: "prerouting",
          rules: [
            { comment: "mark", match: { protocol: "udp", dport: 9401 }, action: { type: "mark", value: 0x2a } },
            {
              comment: "ctmark",
              match: { protocol: "udp", dport: 9401 },
              action: { type: "connmark", op: "set", value: 0x7 },
            },
            {
              comment: "logmark",
              match: { protocol: "udp", dport: 9401 },
              action: { type: "logmark", prefix: "LM ", group },
            },
            {
              comment: "plain",
              match: { protocol: "udp", dport: 9402 },
              action: { type: "logmark", prefix: "LM0 ", group },
            },
          ],
        },
      },
    });
    const events: LogEvent[] = [];
    const log = memoryLog();
    reader2 = new LogReader({ groups: [group], netns: server, log, onEvents: (e) => events.push(...e) });
    await reader2.start();
    await lab.sendUdp(client, link.b.ip4, 9401, { count: 3, size: 20 });
    await lab.sendUdp(client, link.b.ip4, 9402, { count: 2, size: 20 });
    for (let i = 0; i < 250 && events.length < 5; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(events.length, 5, JSON.stringify(log.lines));
    const marked = events.filter((e) => e.prefix === "LM ");
    const plain = events.filter((e) => e.prefix === "LM0 ");
    assert.equal(marked.length, 3);
    assert.equal(plain.length, 2);
    for (const e of marked) {
      assert.equal(e.mark, 0x2a);
      assert.equal(e.ctmark, 0x7);
      assert.equal(e.saddr, link.a.ip4);
      assert.equal(e.dport, 9401);
    }
    for (const e of plain) assert.deepEqual([e.mark, e.ctmark, e.dport], [0, 0, 9402]);
    // sendUdp may use one socket (one flow) or several; either way the cache bounds the forks.
    const { started, skipped } = reader2.ctLookups();
    assert.ok(started >= 1 && started <= 5, String(started));
    assert.equal(skipped, 0);
  });

  it("bounds conntrack lookups: argv, cache, in-flight sharing, rate cap with a logged skip count", async () => {
    const t = {
      family: 4 as const,
      protocol: "udp" as const,
      saddr: "10.0.0.1",
      daddr: "10.0.0.2",
      sport: 1000,
      dport: 53,
    };
    assert.deepEqual(conntrackArgs(t), [
      "-G",
      "-p",
      "udp",
      "-s",
      "10.0.0.1",
      "-d",
      "10.0.0.2",
      "--sport",
      "1000",
      "--dport",
      "53",
    ]);
    assert.equal(
      parseCtMark(
        "udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1000 mark=7 use=1\n",
      ),
      7,
    );
    assert.equal(parseCtMark(""), undefined);
    let now = 1_000_000;
    const calls: string[][] = [];
    const log = memoryLog();
    const ct = new CtMarkLookup({
      netns: "nsX",
      log,
      maxPerSecond: 3,
      ttlMs: 500,
      cacheSize: 2,
      reportEveryMs: 0,
      now: () => now,
      run: async (file, args) => {
        calls.push([file, ...args]);
        return "udp 17 29 src=x mark=9 use=1";
      },
    });
    const [a, b] = await Promise.all([ct.lookup(t), ct.lookup(t)]);
    assert.deepEqual([a, b], [9, 9]);
    assert.equal(calls.length, 1, "one process for concurrent lookups of one tuple");
    assert.deepEqual(calls[0]!.slice(0, 5), ["ip", "netns", "exec", "nsX", "conntrack"]);
    assert.equal(await ct.lookup(t), 9);
    assert.equal(calls.length, 1, "cached");
    for (let i = 0; i < 10; i++) await ct.lookup({ ...t, sport: 2000 + i });
    assert.equal(calls.length, 3, "capped at 3 per second");
    assert.equal(ct.skipped, 8);
    assert.ok(
      log.lines.some((l) => l.level === 40 && /skipped/.test(String(l.msg))),
      JSON.stringify(log.lines),
    );
    now += 1000;
    assert.equal(await ct.lookup({ ...t, sport: 3000 }), 9);
    assert.equal(calls.length, 4, "a new second allows lookups again");
    // A reply packet misses by its own tuple; the swapped (original) tuple finds the entry.
    const seen: string[] = [];
    const ct2 = new CtMarkLookup({
      log,
      now: () => now,
      run: async (_f, args) => {
        seen.push(args.join(" "));
        return args.includes("10.0.0.2") && args.indexOf("10.0.0.2") > args.indexOf("10.0.0.1") ? "mark=5" : undefined;
      },
    });
    assert.equal(await ct2.lookup({ ...t, saddr: "10.0.0.2", daddr: "10.0.0.1", sport: 53, dport: 1000 }), 5);
    assert.deepEqual(seen, [
      "-G -p udp -s 10.0.0.2 -d 10.0.0.1 --sport 53 --dport 1000",
      "-G -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 53",
    ]);
  });
});
