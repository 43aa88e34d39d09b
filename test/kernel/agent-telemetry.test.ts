// Telemetry against a real kernel: a sender namespace sends a known number of UDP
// datagrams from several source addresses over a veth into the agent's namespace,
// whose policy has an ACCOUNT table over the link's /24, a 0.0.0.0/0 table, a quota
// and a named counter. Collector deltas, summed over many intervals, a mid-run
// re-apply under traffic, a table replace, and an agent restart (a new process on the
// same state dir), equal the kernel's counters and the sender's own count exactly.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { Applier } from "../../src/agent/apply.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { StateDir } from "../../src/agent/state.ts";
import { Spool } from "../../src/agent/telemetry/spool.ts";
import { Collector } from "../../src/agent/telemetry/collector.ts";
import type { TelemetryBatch } from "../../src/protocol/agent.ts";
import { readCounter, readQuota, readSet, nftDriver } from "../../src/engine/driver/index.ts";
import { fixtureDesired, fixtureText } from "../support/agent-rulesets.ts";

const run = promisify(execFile);
const PAYLOAD = 72; // IP-level length = 20 + 8 + 72 = 100 bytes
const IPLEN = 100;

// Sends `count` datagrams from each source address in turn (bounded, paced).
const SENDER = `
const dgram = require("node:dgram");
const [dst, port, count, size, every, ...srcs] = process.argv.slice(1);
(async () => {
  for (const src of srcs) {
    const s = dgram.createSocket("udp4");
    await new Promise((r) => s.bind({ address: src, port: 0 }, r));
    const buf = Buffer.alloc(Number(size), 0x61);
    for (let i = 0; i < Number(count); i++) {
      await new Promise((r, j) => s.send(buf, Number(port), dst, (e) => (e ? j(e) : r())));
      if (i % Number(every) === Number(every) - 1) await new Promise((r) => setTimeout(r, 1));
    }
    s.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe("agent telemetry (kernel, netns)", () => {
  let lab: NetnsLab;
  let ns: string;
  let sender: string;
  let dst: string;
  let lan: string;
  let srcs: string[];
  let dir: string;
  const sent = new Map<string, number>(); // ip -> packets
  const batches = new Map<number, TelemetryBatch>(); // seq -> batch (the API's exactly-once ingest)

  before(async () => {
    lab = createLab();
    const p = await lab.pair();
    ns = p.server;
    sender = p.client;
    dst = p.link.b.ip4;
    lan = p.link.net4;
    const base = p.link.a.ip4.replace(/\.1$/, "");
    srcs = [p.link.a.ip4, `${base}.11`, `${base}.12`, `${base}.13`];
    for (const s of srcs.slice(1)) await lab.exec(sender, ["ip", "addr", "add", `${s}/24`, "dev", p.link.a.ifname]);
    dir = await mkdtemp(join(tmpdir(), "palisade-agent-tm-"));
  });
  after(async () => {
    await lab.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const send = async (count: number, from = srcs, every = 20) => {
    await lab.exec(
      sender,
      [process.execPath, "-e", SENDER, dst, "7000", String(count), String(PAYLOAD), String(every), ...from],
      { timeoutMs: 30_000 },
    );
    for (const s of from) sent.set(s, (sent.get(s) ?? 0) + count);
  };
  const keep = (b: TelemetryBatch | undefined) => {
    if (b) batches.set(Number(b.seq), b);
  };
  const sumRows = (table: string, ip: string) => {
    let sb = 0,
      sp = 0,
      db = 0,
      dp = 0;
    for (const b of batches.values())
      for (const r of b.accounting)
        if (r.table === table && r.ip === ip) {
          sb += Number(r.srcBytes);
          sp += Number(r.srcPackets);
          db += Number(r.dstBytes);
          dp += Number(r.dstPackets);
        }
    return { sb, sp, db, dp };
  };
  const sumTable = (table: string) => {
    let sb = 0,
      sp = 0,
      db = 0,
      dp = 0;
    for (const b of batches.values())
      for (const r of b.accounting)
        if (r.table === table) {
          sb += Number(r.srcBytes);
          sp += Number(r.srcPackets);
          db += Number(r.dstBytes);
          dp += Number(r.dstPackets);
        }
    return { sb, sp, db, dp };
  };

  it("deltas over many intervals, a re-apply under traffic, a table replace and a restart add up exactly", async () => {
    const drv = { netns: ns };
    const log = memoryLog("warn");
    const state = await StateDir.open(dir);
    const epoch = await state.epoch();
    const spool = await Spool.open(state.spoolDir, { maxBytes: 1 << 24, maxBatches: 1000 }, log);
    const collector = await Collector.create({
      driver: nftDriver(drv),
      spool,
      epoch,
      log,
      resumeFile: state.path("telemetry-resume.json"),
    });
    const applier = new Applier(nftDriver(drv), log, { beforeChange: async () => keep(await collector.collect()) });
    const text = fixtureText({ lan, withAll: true, quotaBytes: 50_000_000 });
    assert.equal(
      (await applier.safeApply({ text, confirmTimeoutMs: 1000, confirmed: async () => true })).status,
      "applied",
    );

    // Several intervals with traffic in between (and one without).
    for (let i = 0; i < 3; i++) {
      await send(40);
      keep(await collector.collect());
    }
    keep(await collector.collect());

    // Re-apply a changed policy WHILE the sender runs: the incremental plan keeps every
    // object, so no packet falls between a read and the commit.
    const before = (await readCounter("inet", "palisade", "udp_seen", drv)).packets;
    const bg = send(400, srcs, 1); // ~1 ms per datagram: the apply lands mid-stream
    for (let i = 0; i < 200 && (await readCounter("inet", "palisade", "udp_seen", drv)).packets === before; i++)
      await new Promise((r) => setTimeout(r, 5));
    const changed = await applier.safeApply({
      text: fixtureText({ lan, withAll: true, quotaBytes: 60_000_000, extra: ["tcp dport 9 drop"] }),
      confirmTimeoutMs: 1000,
      confirmed: async () => true,
    });
    assert.equal(changed.mode, "incremental");
    const mid = (await readCounter("inet", "palisade", "udp_seen", drv)).packets - before;
    await bg;
    assert.ok(mid > 0 && mid < 1600, `the re-apply ran while traffic flowed (${mid} of 1600 packets had passed)`);
    keep(await collector.collect());

    // A change the kernel refuses in place (base chain priority): tables replaced with
    // carried values; the collector's final reading ran just before.
    const moved = fixtureDesired({ lan, withAll: true, quotaBytes: 60_000_000, priority: 5 });
    assert.equal(
      (await applier.safeApply({ ...moved, confirmTimeoutMs: 1000, confirmed: async () => true })).mode,
      "carry",
    );
    await send(25);
    keep(await collector.collect());

    // Ack some batches (the API got them), leave the others spooled.
    const seqs = [...batches.keys()].sort((a, b) => a - b);
    for (const s of seqs.slice(0, 2)) assert.equal(await spool.ack(epoch, s), true);

    // Agent restart: more traffic, then a NEW process on the same state dir.
    await send(30, srcs.slice(0, 2));
    const { stdout } = await run(
      process.execPath,
      ["--import", "tsx", join(import.meta.dirname, "../support/bin/agent-telemetry-restart.ts"), dir, ns],
      { timeout: 60_000 },
    );
    const child = JSON.parse(stdout) as { resent: TelemetryBatch[]; batch: TelemetryBatch | null; left: number };
    assert.deepEqual(
      child.resent.map((b) => b.seq),
      seqs.slice(2).map(String),
      "unacked batches are resent in order (uint64 as decimal strings)",
    );
    assert.ok(child.batch, "the restarted agent ships the traffic sent while it was down");
    assert.equal(child.batch.seq, String(seqs[seqs.length - 1]! + 1), "seq continues across the restart");
    assert.equal(child.batch.epoch, epoch);
    keep(child.batch);
    assert.equal(child.left, 0, "acks remove batches");

    // Per address: equal to the sender's count and to the kernel's element counters.
    const src = await readSet("inet", "palisade", "acct_lan_src", drv);
    for (const ip of srcs) {
      const got = sumRows("lan", ip);
      const n = sent.get(ip) ?? 0;
      assert.equal(got.sp, n, `packets from ${ip}`);
      assert.equal(got.sb, n * IPLEN, `bytes from ${ip}`);
      const el = src.elements.find((e) => e.key === ip);
      assert.equal(el?.packets, n);
      assert.equal(el?.bytes, n * IPLEN);
    }
    // The receiver, as destination, got everything.
    const total = [...sent.values()].reduce((a, b) => a + b, 0);
    assert.equal(sumRows("lan", dst).dp, total);
    assert.equal(sumRows("lan", dst).db, total * IPLEN);
    // Every row of a table (per-address + unattributed) adds up to the kernel's
    // per-direction totals; with every element added there is no unattributed row.
    const lanSrc = await readCounter("inet", "palisade", "acct_lan_srctotal", drv);
    const lanDst = await readCounter("inet", "palisade", "acct_lan_dsttotal", drv);
    assert.deepEqual(sumTable("lan"), { sb: lanSrc.bytes, sp: lanSrc.packets, db: lanDst.bytes, dp: lanDst.packets });
    assert.deepEqual(sumRows("lan", ""), { sb: 0, sp: 0, db: 0, dp: 0 });
    // 0.0.0.0/0: ACCOUNT's one slot, on the src side only.
    const allTotal = await readCounter("inet", "palisade", "acct_all_total", drv);
    assert.deepEqual(sumRows("all", ""), { sb: allTotal.bytes, sp: allTotal.packets, db: 0, dp: 0 });
    assert.ok(allTotal.packets >= total);
    // Named counter and quota.
    const udp = await readCounter("inet", "palisade", "udp_seen", drv);
    let cb = 0,
      cp = 0;
    for (const b of batches.values())
      for (const c of b.counters)
        if (c.name === "udp_seen") {
          cb += Number(c.bytes);
          cp += Number(c.packets);
        }
    assert.deepEqual([cp, cb], [udp.packets, udp.bytes]);
    assert.equal(cp, total);
    const q = await readQuota("inet", "palisade", "q1", drv);
    assert.equal(q.used, total * IPLEN);
    const lastQuota = [...batches.values()]
      .sort((a, b) => Number(b.seq) - Number(a.seq))
      .flatMap((b) => b.quotas)
      .find((s) => s.name === "q1");
    assert.equal(lastQuota?.used, String(q.used));
    assert.equal(lastQuota?.limit, "60000000");
  });
});
