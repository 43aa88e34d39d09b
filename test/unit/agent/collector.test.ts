// The telemetry collector reading through the Driver interface, on the in-memory
// FakeDriver (the kernel tests test/kernel/agent-telemetry*.test.ts prove it with nft).
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Applier } from "../../../src/agent/apply.ts";
import { kernelApplier } from "../../../src/agent/kernel-applier.ts";
import { Collector, MAX_ACCOUNTING_ROWS, type CollectorOptions } from "../../../src/agent/telemetry/collector.ts";
import { readKernel, type KernelReading } from "../../../src/agent/telemetry/reading.ts";
import { Spool } from "../../../src/agent/telemetry/spool.ts";
import type { Driver } from "../../../src/engine/driver/index.ts";
import { MAX_MESSAGE_BYTES, TelemetryBatch } from "../../../src/protocol/agent.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import { FakeDriver } from "../../support/fake-driver.ts";
import { fixtureDesired, fixtureText } from "../../support/agent-rulesets.ts";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), "palisade-collector-"));
  dirs.push(dir);
  await mkdir(join(dir, "spool"));
  const log = memoryLog("warn");
  const kernel = new FakeDriver();
  await kernel.apply(fixtureText({ lan: "10.9.0.0/24" }));
  /** A collector on this state dir (again: a restarted agent); `read` in place of the driver's. */
  const open = async (read?: () => Promise<KernelReading>, extra: Partial<CollectorOptions> = {}) =>
    Collector.create({
      driver: kernel,
      spool: await Spool.open(join(dir, "spool"), { maxBytes: 64 << 20, maxBatches: 100 }, log),
      epoch: "e1",
      log,
      resumeFile: join(dir, "resume.json"),
      read,
      ...extra,
    });
  /** Packets from `ip` (its element and the direction's total, as the rule counts them). */
  const from = (ip: string, packets: number, bytes: number) => {
    kernel.hit("inet", "palisade", "acct_lan_src", ip, packets, bytes);
    kernel.count("inet", "palisade", "acct_lan_srctotal", packets, bytes);
  };
  return { kernel, open, from, log, dir };
}

const rows = (b: { accounting: { ip: string; srcPackets: string; srcBytes: string }[] } | undefined) =>
  (b?.accounting ?? []).map((a) => `${a.ip} ${a.srcPackets}/${a.srcBytes}`).sort();

describe("collector on the Driver (fake)", () => {
  it("ships per-address deltas, counter deltas and quota usage read through the driver", async () => {
    const { kernel, open, from } = await setup();
    const c = await open();
    await c.collect(); // the first reading is the base
    from("10.9.0.7", 4, 400);
    from("10.9.0.8", 1, 100);
    kernel.count("inet", "palisade", "udp_seen", 2, 200);
    kernel.spend("inet", "palisade", "q1", 700);
    const b1 = await c.collect();
    assert.deepEqual(rows(b1), ["10.9.0.7 4/400", "10.9.0.8 1/100"]);
    assert.deepEqual(
      b1?.counters.filter((x) => x.packets !== "0").map((x) => [x.name, x.packets, x.bytes]),
      [["udp_seen", "2", "200"]],
    );
    assert.equal(b1?.quotas.find((q) => q.name === "q1")?.used, "700");
    from("10.9.0.7", 1, 50);
    const b2 = await c.collect();
    assert.deepEqual(rows(b2), ["10.9.0.7 1/50"], "only what changed since the last reading");
  });

  it("a restarted collector resumes from its spool: nothing counted twice, nothing skipped", async () => {
    const { open, from } = await setup();
    const c1 = await open();
    await c1.collect();
    from("10.9.0.7", 3, 300);
    await c1.collect();
    from("10.9.0.7", 2, 200);
    const c2 = await open();
    assert.deepEqual(rows(await c2.collect()), ["10.9.0.7 2/200"]);
  });

  it("a carry (the kernel refused the incremental form) ships every packet counted before its read of the values", async () => {
    const { kernel, from, open, log } = await setup();
    let sent = 0;
    // Packets keep coming: 100 bytes from 10.9.0.7 right after each of the collector's readings.
    const c = await open(async () => {
      const r = await readKernel(kernel);
      from("10.9.0.7", 1, 100);
      sent += 100;
      return r;
    });
    const applier = new Applier(kernel, log, { beforeChange: async () => void (await c.collect()) });
    let shipped = 0;
    c.onBatch = (b) => {
      for (const a of b.accounting) if (a.ip === "10.9.0.7") shipped += Number(a.srcBytes);
    };
    await c.collect(); // the base
    from("10.9.0.7", 5, 5000);
    sent += 5000;
    // A new chain priority: the incremental form is refused, the tables are replaced, values carried.
    const out = await applier.safeApply({
      ...fixtureDesired({ lan: "10.9.0.0/24", priority: 10 }),
      confirmTimeoutMs: 1000,
      confirmed: async () => true,
    });
    assert.equal(out.mode, "carry");
    const inKernel = (await kernel.readTable("inet", "palisade")).sets
      .find((x) => x.name === "acct_lan_src")
      ?.elements.find((e) => e.key === "10.9.0.7")?.bytes;
    const sentBefore = sent;
    await c.collect();
    // Every packet up to the last reading is shipped, none twice; the kernel holds them all.
    assert.equal(inKernel, sentBefore, "the carried value holds every packet counted before the carry's read");
    assert.equal(shipped, sent - 100, "shipped: all but the packets after the last reading");
  });

  it("a rollback that puts back a removed counter with its value does not ship that value again (the agent's applier)", async () => {
    const { kernel, open, log } = await setup();
    // v1 (applied before this agent: no known state, so the rollback's snapshot is a listing with values).
    await kernel.apply(fixtureText({ lan: "10.9.0.0/24", withAll: true }));
    const c = await open();
    let shipped = 0;
    const ship = (b: { accounting: { table: string; srcBytes: string }[] } | undefined) => {
      for (const a of b?.accounting ?? []) if (a.table === "all") shipped += Number(a.srcBytes);
    };
    c.onBatch = ship;
    const applier = kernelApplier(
      kernel,
      { collector: c, logGroups: { syncFromKernel: async () => {} }, resync: async () => {} },
      log,
    );
    await c.collect(); // the base
    kernel.count("inet", "palisade", "acct_all_total", 7, 7000);
    // v2 drops the 0.0.0.0/0 table's counter; no Confirm comes: rolled back, the counter back at 7000.
    const out = await applier.safeApply({
      ...fixtureDesired({ lan: "10.9.0.0/24" }),
      confirmTimeoutMs: 1000,
      confirmed: async () => false,
    });
    assert.equal(out.status, "rolled_back");
    const counter = async () =>
      (await kernel.readTable("inet", "palisade")).counters.find((x) => x.name === "acct_all_total")?.bytes;
    assert.equal(await counter(), 7000, "the listing's snapshot put the value back");
    kernel.count("inet", "palisade", "acct_all_total", 1, 100);
    await c.collect();
    assert.equal(shipped, 7100, "7000 once (before v2 removed it), then 100");
    // A restart carries on from the same base.
    kernel.count("inet", "palisade", "acct_all_total", 1, 10);
    const again = await open();
    ship(await again.collect());
    assert.equal(shipped, 7110);
  });

  it("a rebase after a rewind is kept across a restart: the rewound value is not shipped as a reset", async () => {
    const { kernel, open } = await setup();
    const udp = (b: { counters: { name: string; bytes: string }[] } | undefined) =>
      Number(b?.counters.find((x) => x.name === "udp_seen")?.bytes ?? 0);
    const c = await open();
    await c.collect();
    kernel.count("inet", "palisade", "udp_seen", 10, 1000);
    assert.equal(udp(await c.collect()), 1000);
    kernel.count("inet", "palisade", "udp_seen", -6, -600); // a verbatim restore put back 400
    await c.rebase();
    kernel.count("inet", "palisade", "udp_seen", 1, 50);
    const restarted = await open();
    assert.equal(udp(await restarted.collect()), 50, "only what came after the rebase");
  });

  it("an interval reading that falls inside a change waits (the applier is busy): no value is shipped twice", async () => {
    const { kernel, from, open, log } = await setup();
    const c = await open();
    let shipped = 0;
    c.onBatch = (b) => {
      for (const a of b.accounting) if (a.ip === "10.9.0.7") shipped += Number(a.srcBytes);
    };
    // The kernel's writes, with the interval's tick landing in the carry: after the values
    // were read, before they are committed (100 bytes arrive then: the documented loss).
    let writes = 0;
    const driver: Driver = Object.create(kernel);
    driver.apply = async (text) => {
      if (++writes === 2) {
        from("10.9.0.7", 1, 100);
        await c.tick();
      }
      await kernel.apply(text);
    };
    const applier = kernelApplier(
      driver,
      { collector: c, logGroups: { syncFromKernel: async () => {} }, resync: async () => {} },
      log,
    );
    c.start(3_600_000, () => applier.busy);
    try {
      await c.collect(); // the base
      from("10.9.0.7", 5, 5000);
      const out = await applier.safeApply({
        ...fixtureDesired({ lan: "10.9.0.0/24", priority: 10 }), // the incremental form is refused: carry
        confirmTimeoutMs: 1000,
        confirmed: async () => true,
      });
      assert.equal(out.mode, "carry");
      assert.equal(writes, 2);
      from("10.9.0.7", 1, 10);
      await c.tick();
      assert.equal(shipped, 5010, "everything but the 100 bytes between the carry's read and its commit, once");
    } finally {
      c.stop();
    }
  });

  describe("a reading larger than one batch", () => {
    const ips = (n: number) => Array.from({ length: n }, (_, i) => `10.9.${i >> 8}.${i & 255}`);
    it("goes as several batches with consecutive seqs: every row once, the rest of the reading and the resume point in the last", async () => {
      const { open, from, kernel, dir } = await setup();
      const c = await open(undefined, { maxAccountingRows: 3 });
      await c.collect();
      const sent: TelemetryBatch[] = [];
      c.onBatch = (b) => sent.push(b);
      for (const ip of ips(7)) from(ip, 1, 100);
      kernel.count("inet", "palisade", "udp_seen", 2, 200);
      kernel.spend("inet", "palisade", "q1", 700);
      const last = await c.collect();
      assert.deepEqual(
        sent.map((b) => [b.seq, b.accounting.length, b.counters.length > 0, b.quotas.length > 0]),
        [
          ["2", 3, false, false],
          ["3", 3, false, false],
          ["4", 1, true, true],
        ],
      );
      assert.equal(last, sent[2], "collect answers the reading's last batch");
      assert.deepEqual(
        sent.flatMap((b) => rows(b)).sort(),
        ips(7)
          .map((ip) => `${ip} 1/100`)
          .sort(),
      );
      const onDisk = await Promise.all(
        ["00000000000000000002", "00000000000000000003", "00000000000000000004"].map(
          async (n) => JSON.parse(await readFile(join(dir, "spool", `b-${n}.json`), "utf8")) as Record<string, unknown>,
        ),
      );
      assert.deepEqual(
        onDisk.map((e) => [e.part, e.resume !== undefined]),
        [
          [4, false],
          [4, false],
          [undefined, true],
        ],
        "parts name the reading's last batch",
      );
      from(ips(7)[0]!, 1, 10);
      const next = await c.collect();
      assert.equal(next?.seq, "5");
      assert.deepEqual(rows(next), [`${ips(7)[0]} 1/10`]);
    });

    it("an agent stopped between a reading's batches: the parts are removed at start and the next reading ships their values once", async () => {
      const { open, from, dir, log } = await setup();
      const c1 = await open(undefined, { maxAccountingRows: 3 });
      await c1.collect();
      const resumeBefore = await readFile(join(dir, "resume.json"), "utf8");
      for (const ip of ips(7)) from(ip, 1, 100);
      await c1.collect();
      // What a stop after the parts and before the last batch leaves: the parts on disk, the
      // last batch and the new resume point not written.
      await rm(join(dir, "spool", "b-00000000000000000004.json"));
      await writeFile(join(dir, "resume.json"), resumeBefore);
      const c2 = await open(undefined, { maxAccountingRows: 3 });
      assert.deepEqual((await readdir(join(dir, "spool"))).filter((n) => n.startsWith("b-")).sort(), [
        "b-00000000000000000001.json",
      ]);
      assert.ok(log.lines.some((l) => String(l.msg).includes("whose last batch was never written")));
      const sent: TelemetryBatch[] = [];
      c2.onBatch = (b) => sent.push(b);
      await c2.collect();
      assert.deepEqual(
        sent.map((b) => b.seq),
        ["2", "3", "4"],
      );
      assert.deepEqual(
        sent.flatMap((b) => rows(b)).sort(),
        ips(7)
          .map((ip) => `${ip} 1/100`)
          .sort(),
      );
    });

    it("a reading whose last batch was acked before its parts keeps the parts at a restart", async () => {
      const { open, from, dir } = await setup();
      const c1 = await open(undefined, { maxAccountingRows: 3 });
      await c1.collect();
      for (const ip of ips(7)) from(ip, 1, 100);
      await c1.collect();
      await rm(join(dir, "spool", "b-00000000000000000004.json")); // acked first
      const c2 = await open(undefined, { maxAccountingRows: 3 });
      assert.deepEqual((await readdir(join(dir, "spool"))).filter((n) => n.startsWith("b-")).sort(), [
        "b-00000000000000000001.json",
        "b-00000000000000000002.json",
        "b-00000000000000000003.json",
      ]);
      assert.equal(c2.lastSeq, 4, "the next batch does not reuse a seq");
      assert.deepEqual(rows(await c2.collect()), [], "nothing shipped twice");
    });

    it("at the default size, every batch of a 100k-row reading fits the stream's message limit", async () => {
      const { open, from } = await setup();
      const c = await open();
      await c.collect();
      const sent: TelemetryBatch[] = [];
      c.onBatch = (b) => sent.push(b);
      const n = 100_000;
      for (const ip of ips(n)) from(ip, 1_000_000, 1_000_000_000);
      await c.collect();
      assert.equal(sent.length, Math.ceil(n / MAX_ACCOUNTING_ROWS));
      assert.equal(
        sent.reduce((k, b) => k + b.accounting.length, 0),
        n,
      );
      const sizes = sent.map((b) => TelemetryBatch.encode(b).finish().length);
      assert.ok(Math.max(...sizes) < MAX_MESSAGE_BYTES / 2, `batches of ${sizes.join(", ")} bytes`);
    });

    it("the largest batch the collector can make fits the message limit", () => {
      // MAX_ACCOUNTING_ROWS rows with 32-character table names, full-length IPv6 addresses and
      // the largest counts; the most log events held between batches, every field at its
      // longest; a thousand named counters and quotas.
      const max = "18446744073709551615";
      const ip6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
      const batch: TelemetryBatch = {
        epoch: "e".repeat(36),
        seq: max,
        takenAtUnixMs: "9223372036854775807",
        accounting: Array.from({ length: MAX_ACCOUNTING_ROWS }, () => ({
          table: "t".repeat(32),
          ip: ip6,
          srcBytes: max,
          srcPackets: max,
          dstBytes: max,
          dstPackets: max,
        })),
        quotas: Array.from({ length: 1000 }, () => ({
          name: "q".repeat(32),
          mode: "packets",
          limit: max,
          used: max,
          grow: true,
        })),
        counters: Array.from({ length: 1000 }, () => ({ name: "c".repeat(64), bytes: max, packets: max })),
        logs: Array.from({ length: 10_000 }, () => ({
          unixMs: "9223372036854775807",
          prefix: "p".repeat(127),
          level: 7,
          mark: 0xffffffff,
          ctmark: 0xffffffff,
          iif: "i".repeat(15),
          oif: "o".repeat(15),
          saddr: ip6,
          daddr: ip6,
          protocol: "p".repeat(16),
          sport: 65535,
          dport: 65535,
          length: 65535,
        })),
        spoolDroppedBatches: max,
        spoolDroppedBytes: max,
        logsDropped: max,
      };
      const size = TelemetryBatch.encode(batch).finish().length;
      assert.ok(size < MAX_MESSAGE_BYTES, `${size} bytes`);
    });
  });
});
