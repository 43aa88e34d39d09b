// Telemetry end to end: real kernel (netns), the real agent (startAgent: collector, spool,
// gRPC client, NFLOG reader), the real agent gRPC server and the real ingest, Postgres,
// Redis and REST queries. A sender namespace sends a known number of 100-byte datagrams
// from several addresses through the agent's host (tables: lan = the /24, all =
// 0.0.0.0/0; a quota; a LOGMARK-style NFLOG rule). Phases: normal; API (gRPC) killed;
// agent restarted; agent<->API link cut (a TCP relay in this process that blackholes,
// since the agent's connection is on the root namespace's loopback, whose firewall we
// never touch). After each phase the API's totals equal the sender's count and the
// kernel's counters exactly, and the batches spooled during an outage are the ones the
// API ingests after it. The ruleset is a policy document compiled by the real compiler
// (nft -c, then nft -f), as a deployment would load it. Then a quota reset from the API reaches the kernel; a
// growing quota (quota2 --grow) is listed as a quota and its reset reaches the kernel
// too; and a log event arrives with its mark.
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfig } from "../../src/agent/config.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { startAgent, type AgentHandle } from "../../src/agent/main.ts";
import { startAgentServer, type RunningAgentServer } from "../../src/api/grpc/server.ts";
import { ensureCa, type AgentCa } from "../../src/api/tls/ca.ts";
import { silentLog } from "../../src/api/grpc/context.ts";
import { readCounter, readQuota, readSet } from "../../src/engine/driver/index.ts";
import { growCounterName } from "../../src/engine/index.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { createLab, type NetnsLab } from "../support/netns.ts";
import type { PolicyInput } from "../../src/engine/policy/index.ts";
import { applyPolicy } from "../support/nft-lab.ts";
import { waitFor } from "../support/wait.ts";

/**
 * The e2e policy: per-address accounting of the /24 (lan), a one-slot table (all), IPv6
 * per address (lan6, UDP only: neighbour discovery from the same addresses would be
 * counted too) and per /64 (net6), a byte quota and a growing quota on UDP, and a
 * LOGMARK rule on UDP 7777 that sets mark 0x2a first.
 */
const e2ePolicy = (net4: string, net6: string): PolicyInput => ({
  accounting: {
    lan: { prefix: net4 },
    all: { prefix: "0.0.0.0/0" },
    lan6: { prefix: net6 },
    net6: { prefix: "2001:db8::/32", aggregate: 64 },
  },
  quotas: { q1: { mode: "bytes", limit: 50_000_000 }, bt: { grow: true } },
  counters: { udp_seen: {} },
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { action: { type: "account", table: "lan" } },
        { match: { protocol: "udp" }, action: { type: "account", table: "lan6" } },
        { match: { protocol: "udp" }, action: { type: "account", table: "net6" } },
        { action: { type: "account", table: "all" } },
        { match: { protocol: "udp", dport: 7777 }, action: { type: "mark", value: 0x2a } },
        { match: { protocol: "udp", dport: 7777 }, action: { type: "logmark", prefix: "PAL mark: ", group: 5 } },
        { match: { protocol: "udp", quota: { name: "q1" } }, action: { type: "counter", name: "udp_seen" } },
        { match: { protocol: "udp", quota: { name: "bt" } }, action: "accept" },
      ],
    },
  },
});

const IPLEN = 100;
const IPLEN6 = 120; // 72 bytes of payload + UDP 8 + IPv6 40
const SENDER = `
const dgram = require("node:dgram");
const [dst, port, count, ...srcs] = process.argv.slice(1);
(async () => {
  for (const src of srcs) {
    const s = dgram.createSocket(src.includes(":") ? "udp6" : "udp4");
    await new Promise((r) => s.bind({ address: src, port: 0 }, r));
    const buf = Buffer.alloc(72, 0x61);
    for (let i = 0; i < Number(count); i++) {
      await new Promise((r, j) => s.send(buf, Number(port), dst, (e) => (e ? j(e) : r())));
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 1));
    }
    s.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
`;

/**
 * A TCP relay the agent connects through. `cut()` stops moving bytes both ways and
 * accepts new connections without connecting them: what a drop rule on the path does
 * (TCP holds and retransmits; nothing is corrupted), until `restore()`.
 */
class Relay {
  private server: Server | undefined;
  private pairs = new Set<[Socket, Socket | undefined]>();
  private cutNow = false;
  port = 0;
  constructor(private target: () => number) {}
  cut(): void {
    this.cutNow = true;
    for (const [c, up] of this.pairs) {
      c.pause();
      up?.pause();
    }
  }
  restore(): void {
    this.cutNow = false;
    for (const [c, up] of this.pairs) {
      c.resume();
      up?.resume();
    }
  }
  async start(): Promise<void> {
    this.server = createServer((c) => {
      c.on("error", () => {});
      if (this.cutNow) {
        const pair: [Socket, Socket | undefined] = [c, undefined];
        this.pairs.add(pair);
        c.pause();
        c.on("close", () => this.pairs.delete(pair));
        return; // never connected upstream: the agent's own timeouts decide
      }
      const up = connect(this.target(), "127.0.0.1");
      const pair: [Socket, Socket | undefined] = [c, up];
      this.pairs.add(pair);
      up.on("error", () => c.destroy());
      up.on("close", () => {
        this.pairs.delete(pair);
        c.destroy();
      });
      c.on("close", () => up.destroy());
      c.pipe(up);
      up.pipe(c);
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as { port: number }).port;
  }
  async stop(): Promise<void> {
    for (const [c, up] of this.pairs) {
      c.destroy();
      up?.destroy();
    }
    await new Promise((r) => this.server?.close(r));
  }
}

describe("telemetry end to end (kernel, agent, gRPC, ingest, REST)", () => {
  let lab: NetnsLab;
  let t: TestApp;
  let grpcServer: RunningAgentServer | undefined;
  let grpcPort = 0;
  let relay: Relay;
  let agent: AgentHandle | undefined;
  let dir: string;
  let ns: string;
  let sender: string;
  let dst: string;
  let srcs: string[];
  let dst6: string;
  let srcs6: string[];
  let net6: string;
  let token: string;
  const sent = new Map<string, number>();

  let ca: AgentCa;
  // Mutual TLS, the product's default; the relay passes the TLS bytes through untouched.
  const startGrpc = async () => {
    grpcServer = await startAgentServer(
      { db: t.db, redis: t.redis, log: silentLog },
      {
        address: `127.0.0.1:${grpcPort}`,
        tls: { ca, enrollAddress: "127.0.0.1:0", serverNames: ["127.0.0.1"], clientCertTtlSeconds: 3600 },
      },
    );
    grpcPort = grpcServer.port;
  };
  const agentArgs = () => [
    "--server",
    `127.0.0.1:${relay.port}`,
    "--state-dir",
    dir,
    "--name",
    "e2e-edge",
    "--netns",
    ns,
    "--telemetry-interval",
    "1",
    "--drift-interval",
    "0",
  ];
  const startAgentNow = async (enroll: boolean) => {
    const enrollArgs = enroll
      ? ["--enroll-token", token, "--enroll-server", `127.0.0.1:${grpcServer!.enrollPort}`]
      : [];
    agent = await startAgent(loadConfig([...agentArgs(), ...enrollArgs]), {
      log: memoryLog("warn"),
      backoff: { initialMs: 100, maxMs: 500 },
      heartbeatMs: 500,
    });
  };
  const spooled = async () =>
    (await readdir(join(dir, "spool")).catch(() => [] as string[]))
      .flatMap((n) => /^b-(\d+)\.json$/.exec(n)?.[1] ?? [])
      .map(Number);
  /** Wait until the agent has spooled at least `n` batches it could not deliver; their seqs. */
  const spoolDuringOutage = async (n: number) => {
    let seqs: number[] = [];
    await waitFor(
      async () => (seqs = await spooled()).length >= n,
      60_000,
      `${n} batches spooled during the outage`,
      100,
    );
    return seqs;
  };
  /** The spooled batches reached the API's ledger (each once) and left the spool. */
  const assertIngested = async (phase: string, seqs: number[]) => {
    await waitFor(
      async () => !(await spooled()).some((q) => seqs.includes(q)),
      60_000,
      `${phase}: the spooled batches acked`,
      100,
    );
    const rows = await t.db.telemetryBatch.findMany({
      where: { seq: { in: seqs.map(BigInt) } },
      select: { seq: true },
    });
    assert.deepEqual(
      rows.map((r) => Number(r.seq)).sort((a, b) => a - b),
      [...seqs].sort((a, b) => a - b),
      `${phase}: every batch spooled during the outage was ingested`,
    );
  };
  const send = async (count: number, from = srcs, port = 7000) => {
    await lab.exec(sender, [process.execPath, "-e", SENDER, dst, String(port), String(count), ...from], {
      timeoutMs: 60_000,
    });
    for (const s of from) sent.set(s, (sent.get(s) ?? 0) + count);
    // The same from the IPv6 addresses (each phase's traffic in both families).
    if (from === srcs) {
      await lab.exec(sender, [process.execPath, "-e", SENDER, dst6, String(port), String(count), ...srcs6], {
        timeoutMs: 60_000,
      });
      for (const s of srcs6) sent.set(s, (sent.get(s) ?? 0) + count);
    }
  };
  const apiRows = async (table = "lan") => {
    const r = await t.req("GET", `/v1/accounting/tables/${table}?host=e2e-edge&limit=500`);
    if (r.statusCode === 404) return new Map<string, Record<string, number>>();
    const items = (r.json() as { items: (Record<string, number> & { ip: string })[] }).items;
    return new Map(items.map((x) => [x.ip, x]));
  };
  /** Bounded wait until the API's per-address packets equal what was sent. */
  const settle = async () => {
    let rows = await apiRows();
    for (let i = 0; i < 300; i++) {
      const v6 = await apiRows("lan6");
      if (
        srcs.every((s) => rows.get(s)?.srcPackets === (sent.get(s) ?? 0)) &&
        srcs6.every((s) => v6.get(s)?.srcPackets === (sent.get(s) ?? 0))
      )
        break;
      await new Promise((r) => setTimeout(r, 200));
      rows = await apiRows();
    }
    return rows;
  };
  /** IPv6: per address (lan6) and per /64 (net6) equal the sender and the kernel's elements. */
  const assertExact6 = async (phase: string) => {
    const drv = { netns: ns };
    const rows = await apiRows("lan6");
    const set = await readSet("inet", "palisade", "acct_lan6_src", drv);
    let total = 0;
    for (const s of srcs6) {
      const n = sent.get(s) ?? 0;
      total += n;
      assert.deepEqual(
        [rows.get(s)?.srcPackets, rows.get(s)?.srcBytes],
        [n, n * IPLEN6],
        `${phase}: IPv6 packets and bytes from ${s}`,
      );
      const el = set.elements.find((e) => e.key === s);
      assert.deepEqual(
        [rows.get(s)?.srcPackets, rows.get(s)?.srcBytes],
        [el?.packets, el?.bytes],
        `${phase}: ${s} equals the kernel's element`,
      );
    }
    assert.deepEqual(
      [rows.get(dst6)?.dstPackets, rows.get(dst6)?.dstBytes],
      [total, total * IPLEN6],
      `${phase}: the IPv6 receiver as destination`,
    );
    const srcTotal = await readCounter("inet", "palisade", "acct_lan6_srctotal", drv);
    assert.deepEqual(
      [srcTotal.packets, srcTotal.bytes],
      [total, total * IPLEN6],
      `${phase}: the kernel's lan6 src total`,
    );
    assert.equal(rows.get(""), undefined, `${phase}: no unattributed IPv6 row`);
    let agg = await apiRows("net6");
    for (let i = 0; i < 100 && agg.get(net6)?.srcPackets !== total; i++) {
      await new Promise((r) => setTimeout(r, 200));
      agg = await apiRows("net6");
    }
    // Sender and receiver share the link's /64: one row, every packet on both sides.
    assert.deepEqual([...agg.keys()], [net6], `${phase}: one row for the /64`);
    const a = agg.get(net6)!;
    assert.deepEqual(
      [a.srcPackets, a.srcBytes, a.dstPackets, a.dstBytes],
      [total, total * IPLEN6, total, total * IPLEN6],
      `${phase}: the /64 aggregate`,
    );
  };
  const assertExact = async (phase: string) => {
    const rows = await settle();
    const drv = { netns: ns };
    const set = await readSet("inet", "palisade", "acct_lan_src", drv);
    let total = 0;
    for (const s of srcs) {
      const n = sent.get(s) ?? 0;
      total += n;
      assert.equal(rows.get(s)?.srcPackets, n, `${phase}: packets from ${s} (sender)`);
      assert.equal(rows.get(s)?.srcBytes, n * IPLEN, `${phase}: bytes from ${s}`);
      const el = set.elements.find((e) => e.key === s);
      assert.deepEqual(
        [rows.get(s)?.srcPackets, rows.get(s)?.srcBytes],
        [el?.packets, el?.bytes],
        `${phase}: ${s} equals the kernel's element`,
      );
    }
    assert.equal(rows.get(dst)?.dstPackets, total, `${phase}: the receiver as destination`);
    // Let one more interval pass so the last totals are shipped, then compare table totals.
    const lanTotal = await readCounter("inet", "palisade", "acct_lan_srctotal", drv);
    const allTotal = await readCounter("inet", "palisade", "acct_all_total", drv);
    for (let i = 0; i < 100; i++) {
      const lan = [...(await apiRows()).values()].reduce((a, x) => a + (x.srcPackets ?? 0), 0);
      const all = (await t.req("GET", "/v1/accounting/tables/all?host=e2e-edge")).json() as {
        items: { srcPackets: number; srcBytes: number }[];
      };
      if (lan === lanTotal.packets && all.items[0]?.srcPackets === allTotal.packets) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const lanSum = [...(await apiRows()).values()].reduce((a, x) => a + (x.srcBytes ?? 0), 0);
    assert.equal(lanSum, lanTotal.bytes, `${phase}: lan rows (addresses + unattributed) = the kernel's src total`);
    assert.equal((await apiRows()).get(""), undefined, `${phase}: no unattributed row (every element was added)`);
    const all = (await t.req("GET", "/v1/accounting/tables/all?host=e2e-edge")).json() as {
      items: { ip: string; srcBytes: number; unattributed: boolean }[];
    };
    assert.deepEqual(
      all.items.map((x) => [x.ip, x.srcBytes, x.unattributed]),
      [["", allTotal.bytes, true]],
      `${phase}: the 0.0.0.0/0 table's one slot`,
    );
    const [ledger] = await t.db.$queryRawUnsafe<{ n: bigint; d: bigint }[]>(
      `SELECT count(*) AS n, count(DISTINCT (epoch, seq)) AS d FROM telemetry_batches`,
    );
    assert.equal(ledger?.n, ledger?.d);
    await assertExact6(phase);
  };

  before(async () => {
    t = await startTestApp();
    ca = await ensureCa(t.db, "telemetry-e2e-test-secret-key-0123456789ab");
    await startGrpc();
    relay = new Relay(() => grpcPort);
    await relay.start();
    lab = createLab();
    const p = await lab.pair();
    ns = p.server;
    sender = p.client;
    dst = p.link.b.ip4;
    const base = p.link.a.ip4.replace(/\.1$/, "");
    srcs = [p.link.a.ip4, `${base}.21`, `${base}.22`];
    for (const s of srcs.slice(1)) await lab.exec(sender, ["ip", "addr", "add", `${s}/24`, "dev", p.link.a.ifname]);
    dst6 = p.link.b.ip6;
    net6 = p.link.net6;
    const base6 = p.link.a.ip6.replace(/::1$/, "");
    srcs6 = [p.link.a.ip6, `${base6}::21`, `${base6}::22`];
    for (const s of srcs6.slice(1))
      await lab.exec(sender, ["ip", "-6", "addr", "add", `${s}/64`, "dev", p.link.a.ifname, "nodad"]);
    await applyPolicy(lab, ns, e2ePolicy(p.link.net4, p.link.net6));
    dir = await mkdtemp(join(tmpdir(), "palisade-tel-e2e-"));
    const r = await t.req("POST", "/v1/enrollment-tokens", { body: { ttlSeconds: 600 } });
    assert.equal(r.statusCode, 201, r.body);
    token = (r.json() as { token: string }).token;
    assert.match(token, /\.[0-9a-f]{64}$/, "the token pins the CA");
  });
  after(async () => {
    await agent?.stop().catch(() => {});
    await relay?.stop().catch(() => {});
    await grpcServer?.stop().catch(() => {});
    await lab?.cleanup();
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("normal run: per-address totals equal the sender and the kernel", async () => {
    await startAgentNow(true);
    assert.ok(agent!.client.mutualTls, "the agent runs on mutual TLS");
    await send(50);
    await assertExact("normal");
  });

  it("API killed for part of the run: spooled, resent, still exact", async () => {
    await grpcServer!.stop();
    grpcServer = undefined;
    await send(40);
    // A reading taken while the API is down waits on disk; the API comes back either way,
    // so a failure here does not take the later phases down with it.
    const seqs = await spoolDuringOutage(1).finally(startGrpc);
    await send(10);
    await assertExact("api killed");
    await assertIngested("api killed", seqs);
  });

  it("agent restarted mid-run: resumes from its spool, still exact", async () => {
    await send(20);
    await agent!.stop();
    agent = undefined;
    await send(30); // while no agent runs: the kernel counts, the next reading ships it
    await startAgentNow(false);
    await send(10);
    await assertExact("agent restart");
  });

  it("link between agent and API cut: nothing lost, nothing doubled", async () => {
    relay.cut();
    const before = new Set(await spooled());
    await send(25);
    // Batches taken while the link is cut stay spooled (new seqs beyond what was pending).
    let seqs: number[] = [];
    try {
      await waitFor(
        async () => (seqs = (await spooled()).filter((q) => !before.has(q))).length >= 1,
        60_000,
        "a batch spooled while the link is cut",
        100,
      );
    } finally {
      relay.restore();
    }
    await send(5);
    await assertExact("link cut");
    await assertIngested("link cut", seqs);
  });

  it("a quota reset from the API takes effect in the kernel", async () => {
    const drv = { netns: ns };
    const before = await readQuota("inet", "palisade", "q1", drv);
    assert.ok(before.used > 0);
    let shown = 0;
    for (let i = 0; i < 100 && shown !== before.used; i++) {
      const q = (await t.req("GET", "/v1/quotas?host=e2e-edge")).json() as { items: { name: string; used: number }[] };
      shown = q.items.find((x) => x.name === "q1")?.used ?? -1;
      if (shown !== before.used) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(shown, before.used, "the API shows the kernel's quota usage");
    const r = await t.req("POST", "/v1/hosts/e2e-edge/quotas/q1/reset", { as: "operator" });
    assert.equal(r.statusCode, 202, r.body);
    const id = (r.json() as { requestId: string }).requestId;
    let status = "pending";
    for (let i = 0; i < 100 && status === "pending"; i++) {
      await new Promise((res) => setTimeout(res, 200));
      status = (await t.db.quotaResetRequest.findUniqueOrThrow({ where: { id } })).status;
    }
    assert.equal(status, "done");
    assert.equal((await readQuota("inet", "palisade", "q1", drv)).used, 0, "the kernel quota was reset");
  });

  it("a growing quota is listed with grow: true, used = the kernel's count, remaining null, and resets in the kernel", async () => {
    const drv = { netns: ns };
    const counter = growCounterName("bt", "bytes");
    type Q = { name: string; mode: string; grow: boolean; limit: number; used: number; remaining: number | null };
    const shown = async (want: number) => {
      let q: Q | undefined;
      for (let i = 0; i < 100; i++) {
        const items = ((await t.req("GET", "/v1/quotas?host=e2e-edge")).json() as { items: Q[] }).items;
        q = items.find((x) => x.name === "bt");
        if (q?.used === want) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      return q;
    };
    const kernel = await readCounter("inet", "palisade", counter, drv);
    const total = [...sent.values()].reduce((a, b) => a + b, 0);
    assert.ok(kernel.bytes >= total * IPLEN, "the grow counter counted the traffic");
    const q = await shown(kernel.bytes);
    assert.deepEqual(
      q && [q.mode, q.grow, q.limit, q.used, q.remaining],
      ["bytes", true, 0, kernel.bytes, null],
      "listed as a growing quota with the kernel's count",
    );
    const counters = await t.db.counterTotal.findMany({ where: { name: { in: [counter, "bt"] } } });
    assert.deepEqual(counters, [], "a growing quota is not reported as a plain counter");

    const r = await t.req("POST", "/v1/hosts/e2e-edge/quotas/bt/reset", { as: "operator" });
    assert.equal(r.statusCode, 202, r.body);
    const id = (r.json() as { requestId: string }).requestId;
    let row = await t.db.quotaResetRequest.findUniqueOrThrow({ where: { id } });
    for (let i = 0; i < 100 && row.status === "pending"; i++) {
      await new Promise((res) => setTimeout(res, 200));
      row = await t.db.quotaResetRequest.findUniqueOrThrow({ where: { id } });
    }
    assert.deepEqual([row.status, row.error], ["done", null]);
    assert.equal((await readCounter("inet", "palisade", counter, drv)).bytes, 0, "the kernel counter was reset");
    assert.equal((await shown(0))?.used, 0, "the API shows the reset");
    // It counts up again from zero, exactly.
    await send(4, srcs.slice(0, 1));
    assert.equal((await shown(4 * IPLEN))?.used, 4 * IPLEN);
    assert.equal((await readCounter("inet", "palisade", counter, drv)).bytes, 4 * IPLEN);
  });

  it("log events from the NFLOG (LOGMARK) rule arrive with the mark", async () => {
    await send(3, srcs.slice(0, 1), 7777);
    let items: { prefix: string; mark: number; fields: Record<string, unknown> }[] = [];
    for (let i = 0; i < 100 && items.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 200));
      items = ((await t.req("GET", "/v1/logs?host=e2e-edge&prefix=PAL")).json() as { items: typeof items }).items;
    }
    assert.equal(items.length, 3);
    for (const e of items) {
      assert.equal(e.prefix, "PAL mark: ");
      assert.equal(e.mark, 0x2a);
      assert.equal(e.fields.dport, 7777);
    }
    await assertExact("after logs");
  });
});
