// ACCOUNT with traffic in both directions, on a real router: client -- router -- server
// namespaces, the accounting policy (rendered by the real compiler) in the router's
// forward chain, the agent's real collector reading it. TCP transfers both ways (data,
// ACKs, handshakes: every reply included) from a LAN host. An independent table in the
// router counts, per address and direction, what was really forwarded.
// - Two-way traffic: the host's src and dst rows equal what it sent and received, and
//   there is no unattributed row (a reply is the host's dst traffic, not a remainder).
// - A full set: the remainder of each direction equals exactly what the address that
//   found no free element carried, and the other host's row stays exact.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, type Link, type NetnsLab } from "../support/netns.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { Spool } from "../../src/agent/telemetry/spool.ts";
import { Collector } from "../../src/agent/telemetry/collector.ts";
import type { AccountingDelta } from "../../src/protocol/agent.ts";
import { applyPolicy } from "../support/nft-lab.ts";
import { nftDriver } from "../../src/engine/driver/index.ts";

const UP = 200_000;
const DOWN = 300_000;

// Listeners in the server: 5001 swallows an upload and closes; 5002 sends DOWN bytes.
const SERVER = `
const net = require("node:net");
const down = Number(process.argv[1]);
let up = 0;
const a = net.createServer((s) => { s.on("data", () => {}); s.on("end", () => s.end()); s.on("error", () => {}); });
const b = net.createServer((s) => { s.on("error", () => {}); s.resume(); s.end(Buffer.alloc(down, 98)); });
a.listen(5001, () => b.listen(5002, () => console.log("listening")));
`;

// In the client: one upload of `up` bytes, then one download, from source address `src`.
const CLIENT = `
const net = require("node:net");
const [host, src, up] = process.argv.slice(1);
const conn = (port, onConnect, onData) => new Promise((res, rej) => {
  const s = net.connect({ host, port, localAddress: src }, () => onConnect(s));
  s.on("data", onData);
  s.on("error", rej);
  s.on("close", res);
});
(async () => {
  await conn(5001, (s) => s.end(Buffer.alloc(Number(up), 97)), () => {});
  let got = 0;
  await conn(5002, () => {}, (b) => { got += b.length; });
  console.log(JSON.stringify({ got }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

interface Truth {
  src: { packets: number; bytes: number };
  dst: { packets: number; bytes: number };
}

describe("ACCOUNT with two-way traffic through a router (kernel, netns)", () => {
  let lab: NetnsLab;
  let client: string;
  let router: string;
  let server: string;
  let left: Link;
  let right: Link;
  let dir: string;
  let extra: string; // a second LAN host address on the client
  let extra6: string; // and a second IPv6 one

  before(async () => {
    lab = createLab();
    ({ client, router, server, left, right } = await lab.routed());
    extra = left.a.ip4.replace(/\.1$/, ".3");
    await lab.exec(client, ["ip", "addr", "add", `${extra}/24`, "dev", left.a.ifname]);
    extra6 = left.a.ip6.replace(/::1$/, "::3");
    await lab.exec(client, ["ip", "-6", "addr", "add", `${extra6}/64`, "dev", left.a.ifname, "nodad"]);
    const srv = lab.background(server, [process.execPath, "-e", SERVER, String(DOWN)], { maxLifetimeMs: 120_000 });
    for (let i = 0; i < 100 && !srv.output().includes("listening"); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(srv.output().includes("listening"), `server did not start: ${srv.output()}`);
    dir = await mkdtemp(join(tmpdir(), "palisade-acct-2way-"));
  });
  after(async () => {
    await lab.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** Independent per-address counters in the router's forward path (a table of its own). */
  // Hosts are addresses or prefixes (an IPv6 /64 for the aggregate), one family per call.
  const fam = (hosts: string[]) => (hosts[0]!.includes(":") ? { f: "ip6", ip: "ip6" } : { f: "ip", ip: "ip" });
  const installTruth = async (hosts: string[]) => {
    const { f, ip } = fam(hosts);
    const lines = hosts.flatMap((h, i) => [
      `${ip} saddr ${h} counter name s${i}`,
      `${ip} daddr ${h} counter name d${i}`,
    ]);
    const counters = hosts.flatMap((_, i) => [`counter s${i} {}`, `counter d${i} {}`]);
    const text = `table ${f} truth\ndelete table ${f} truth\ntable ${f} truth {\n${counters.join("\n")}\nchain seen { type filter hook forward priority -10; policy accept;\n${lines.join("\n")}\n}\n}\n`;
    await lab.nft(router, ["-f", "-"], text);
  };
  const readTruth = async (hosts: string[]): Promise<Truth[]> => {
    const out = JSON.parse(
      (await lab.nft(router, ["-j", "list", "counters", "table", fam(hosts).f, "truth"])).stdout,
    ) as { nftables: { counter?: { name: string; packets: number; bytes: number } }[] };
    const c = new Map(
      out.nftables.flatMap((x) =>
        x.counter ? [[x.counter.name, { packets: x.counter.packets, bytes: x.counter.bytes }] as const] : [],
      ),
    );
    return hosts.map((_, i) => ({ src: c.get(`s${i}`)!, dst: c.get(`d${i}`)! }));
  };
  /** The truth once no packet is in flight any more (two equal readings in a row; bounded). */
  const settledTruth = async (hosts: string[]): Promise<Truth[]> => {
    let prev = JSON.stringify(await readTruth(hosts));
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const cur = JSON.stringify(await readTruth(hosts));
      if (cur === prev) return JSON.parse(cur) as Truth[];
      prev = cur;
    }
    assert.fail("forwarded traffic did not settle");
  };
  const transfer = async (src: string, to = right.b.ip4) => {
    const r = await lab.exec(client, [process.execPath, "-e", CLIENT, to, src, String(UP)], { timeoutMs: 60_000 });
    assert.equal((JSON.parse(r.stdout) as { got: number }).got, DOWN);
  };
  const collector = async (name: string) => {
    const log = memoryLog("warn");
    await mkdir(join(dir, name));
    const spool = await Spool.open(join(dir, name), { maxBytes: 1 << 24, maxBatches: 1000 }, log);
    return Collector.create({
      driver: nftDriver({ netns: router }),
      spool,
      epoch: name,
      log,
      resumeFile: join(dir, `${name}.resume.json`),
    });
  };
  // Sums per address of the batches' rows (uint64 arrive as decimal strings).
  type Sum = { ip: string; srcBytes: number; srcPackets: number; dstBytes: number; dstPackets: number };
  const rowsOf = (acc: AccountingDelta[], table: string) => {
    const m = new Map<string, Sum>();
    for (const r of acc.filter((x) => x.table === table)) {
      const cur = m.get(r.ip) ?? { ip: r.ip, srcBytes: 0, srcPackets: 0, dstBytes: 0, dstPackets: 0 };
      m.set(r.ip, {
        ip: r.ip,
        srcBytes: cur.srcBytes + Number(r.srcBytes),
        srcPackets: cur.srcPackets + Number(r.srcPackets),
        dstBytes: cur.dstBytes + Number(r.dstBytes),
        dstPackets: cur.dstPackets + Number(r.dstPackets),
      });
    }
    return m;
  };
  const asRow = (ip: string, t: Truth) => ({
    ip,
    srcBytes: t.src.bytes,
    srcPackets: t.src.packets,
    dstBytes: t.dst.bytes,
    dstPackets: t.dst.packets,
  });
  const strip = (r: Sum | undefined) =>
    r && { ip: r.ip, srcBytes: r.srcBytes, srcPackets: r.srcPackets, dstBytes: r.dstBytes, dstPackets: r.dstPackets };

  it("TCP both ways: src and dst equal what was sent and received, no unattributed row", async () => {
    await applyPolicy(lab, router, {
      accounting: { lan: { prefix: left.net4 } },
      chains: {
        forward: {
          hook: "forward",
          rules: [{ comment: "per-IP accounting", action: { type: "account", table: "lan" } }],
        },
      },
    });
    const hosts = [left.a.ip4];
    await installTruth(hosts);
    const c = await collector("twoway");
    await c.collect(); // baseline
    await transfer(left.a.ip4);
    const [truth] = await settledTruth(hosts);
    const batch = await c.collect();
    assert.ok(batch, "the transfer was collected");
    const rows = rowsOf(batch.accounting, "lan");
    // Replies (the server's data and ACKs) are this host's dst traffic.
    assert.ok(truth!.src.bytes > UP && truth!.dst.bytes > DOWN, "the transfers went through the router");
    assert.deepEqual(strip(rows.get(left.a.ip4)), asRow(left.a.ip4, truth!));
    assert.equal(rows.get(""), undefined, "no unattributed row: every packet of the table is on its address's row");
    assert.deepEqual([...rows.keys()], [left.a.ip4], "the server (outside the prefix) has no row");
  });

  it("a full set: the remainder equals exactly what the address without an element carried", async () => {
    // A /30 holds 4 addresses: size 4. Three slots of each set are taken (what a full
    // set looks like to the kernel), the LAN host takes the last one, the second host
    // finds none: its traffic is counted by the direction totals only.
    const prefix = left.a.ip4.replace(/\.1$/, ".0/30");
    await applyPolicy(lab, router, {
      accounting: { small: { prefix } },
      chains: {
        forward: {
          hook: "forward",
          rules: [{ comment: "per-IP accounting", action: { type: "account", table: "small" } }],
        },
      },
    });
    for (const set of ["acct_small_src", "acct_small_dst"])
      await lab.nft(router, ["add", "element", "inet", "palisade", set, "{ 192.0.2.1, 192.0.2.2, 192.0.2.3 }"]);
    const hosts = [left.a.ip4, extra];
    await installTruth(hosts);
    const c = await collector("fullset");
    await c.collect();
    await transfer(left.a.ip4);
    await transfer(extra);
    const [first, second] = await settledTruth(hosts);
    const batch = await c.collect();
    assert.ok(batch);
    const rows = rowsOf(batch.accounting, "small");
    assert.deepEqual(strip(rows.get(left.a.ip4)), asRow(left.a.ip4, first!), "the host with an element is exact");
    assert.equal(rows.get(extra), undefined, "the second host found no free element");
    assert.ok(second!.src.packets > 0 && second!.dst.packets > 0);
    assert.deepEqual(
      strip(rows.get("")),
      asRow("", second!),
      "the remainder is exactly the second host's traffic, per direction",
    );
  });

  it("IPv6 per address: TCP both ways, src and dst equal what was sent and received", async () => {
    await applyPolicy(lab, router, {
      accounting: { lan6: { prefix: left.net6 } },
      chains: {
        forward: {
          hook: "forward",
          rules: [{ comment: "per-IP accounting", action: { type: "account", table: "lan6" } }],
        },
      },
    });
    const hosts = [left.a.ip6, extra6];
    await installTruth(hosts);
    const c = await collector("v6addr");
    await c.collect();
    await transfer(left.a.ip6, right.b.ip6);
    await transfer(extra6, right.b.ip6);
    const [first, second] = await settledTruth(hosts);
    const batch = await c.collect();
    assert.ok(batch);
    const rows = rowsOf(batch.accounting, "lan6");
    assert.ok(
      first!.src.bytes > UP && first!.dst.bytes > DOWN && second!.src.bytes > UP,
      "the IPv6 transfers went through the router",
    );
    assert.deepEqual(strip(rows.get(left.a.ip6)), asRow(left.a.ip6, first!));
    assert.deepEqual(strip(rows.get(extra6)), asRow(extra6, second!));
    assert.deepEqual(
      [...rows.keys()].sort(),
      [left.a.ip6, extra6].sort(),
      "no unattributed row, no row outside the prefix",
    );
  });

  it("IPv6 per /64 aggregate: one row per /64 of the prefix, equal to that /64's traffic", async () => {
    // 2001:db8::/32 holds both links' /64s: the client's (two addresses, one row) and the
    // server's; every packet is on its source /64's src side and its destination's dst side.
    await applyPolicy(lab, router, {
      accounting: { per64: { prefix: "2001:db8::/32", aggregate: 64 } },
      chains: {
        forward: {
          hook: "forward",
          rules: [{ comment: "per-/64 accounting", action: { type: "account", table: "per64" } }],
        },
      },
    });
    const nets = [left.net6, right.net6];
    await installTruth(nets);
    const c = await collector("v6agg");
    await c.collect();
    await transfer(left.a.ip6, right.b.ip6);
    await transfer(extra6, right.b.ip6);
    const [lan, srv] = await settledTruth(nets);
    const batch = await c.collect();
    assert.ok(batch);
    const rows = rowsOf(batch.accounting, "per64");
    assert.ok(lan!.src.bytes > 2 * UP && srv!.src.bytes > 2 * DOWN, "both transfers went through the router");
    assert.deepEqual(strip(rows.get(left.net6)), asRow(left.net6, lan!), "the client's /64 (both addresses) is exact");
    assert.deepEqual(strip(rows.get(right.net6)), asRow(right.net6, srv!), "the server's /64 is exact");
    assert.deepEqual([...rows.keys()].sort(), [left.net6, right.net6].sort(), "one row per /64, no unattributed row");
  });
});
