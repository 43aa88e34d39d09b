import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Spool } from "../../../src/agent/telemetry/spool.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import type { TelemetryBatch } from "../../../src/protocol/agent.ts";

const dirs: string[] = [];
const fresh = async () => {
  const d = await mkdtemp(join(tmpdir(), "palisade-spool-"));
  dirs.push(d);
  return d;
};
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const batch = (seq: number, pad = 0): TelemetryBatch => ({
  epoch: "e1",
  seq: String(seq),
  takenAtUnixMs: String(seq),
  accounting: [],
  quotas: [],
  counters: [{ name: "x".repeat(1 + pad), bytes: String(seq), packets: "1" }],
  logs: [],
  spoolDroppedBatches: "0",
  spoolDroppedBytes: "0",
  logsDropped: "0",
});

describe("telemetry spool", () => {
  it("keeps batches in seq order until acked, across reopen", async () => {
    const d = await fresh();
    const s = await Spool.open(d, { maxBytes: 1 << 20, maxBatches: 100 }, memoryLog());
    for (const seq of [1, 2, 3]) await s.appendReading([batch(seq)]);
    assert.equal(await s.ack("e1", 2), true);
    assert.equal(await s.ack("e1", 2), false);
    assert.equal(await s.ack("other-epoch", 1), false);
    const again = await Spool.open(d, { maxBytes: 1 << 20, maxBatches: 100 }, memoryLog());
    assert.deepEqual(
      (await again.pending()).map((b) => b.seq),
      ["1", "3"],
    );
    assert.equal(again.lastSeq, 3);
  });

  it("drops the oldest batches when the count bound is hit, and counts the drop", async () => {
    const d = await fresh();
    const log = memoryLog();
    const s = await Spool.open(d, { maxBytes: 1 << 20, maxBatches: 3 }, log);
    for (let seq = 1; seq <= 5; seq++) await s.appendReading([batch(seq)]);
    assert.deepEqual(
      (await s.pending()).map((b) => b.seq),
      ["3", "4", "5"],
    );
    assert.equal(s.pendingDrops.batches, 2);
    assert.ok(log.lines.some((l) => l.level === 40 && /spool full/.test(String(l.msg))));
    // The drop report survives a restart until a batch has carried it.
    const again = await Spool.open(d, { maxBytes: 1 << 20, maxBatches: 3 }, memoryLog());
    assert.equal(again.pendingDrops.batches, 2);
    await again.clearDrops(again.pendingDrops);
    assert.equal((await Spool.open(d, { maxBytes: 1 << 20, maxBatches: 3 }, memoryLog())).pendingDrops.batches, 0);
  });

  it("drops the oldest batches when the byte bound is hit; never the newest", async () => {
    const d = await fresh();
    const s = await Spool.open(d, { maxBytes: 4096, maxBatches: 1000 }, memoryLog());
    for (let seq = 1; seq <= 10; seq++) await s.appendReading([batch(seq, 900)]);
    assert.ok(s.bytes <= 4096, `spool holds ${s.bytes} bytes`);
    const seqs = (await s.pending()).map((b) => Number(b.seq));
    assert.equal(seqs[seqs.length - 1], 10);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(s.pendingDrops.batches, 10 - seqs.length);
    // No temp files are left behind.
    assert.ok((await readdir(d)).every((n) => !n.endsWith(".tmp")));
  });
});
