// The telemetry spool: every batch is written to disk (atomically) before it is sent,
// removed when the API acknowledges (epoch, seq), and resent in seq order after a
// reconnect or a restart. Bounded by count and bytes: when full, the OLDEST batches
// are dropped (last resort: that data is lost), and the loss is counted in
// dropped.json until the next batch reports it (TelemetryBatch.spool_dropped_batches and
// spool_dropped_bytes: their size on disk) and in a warn log line.
//
// Each file also holds the collector's cumulative reading after that batch, so a
// restarted agent resumes its delta baseline from the newest batch it wrote.
//
// A reading too large for one gRPC message is spooled as several batches (appendReading):
// the first ones are marked `part` (with the seq of the reading's last batch) and hold no
// resume point, the last one holds it. An agent that stopped between them left parts whose
// reading ends past its resume point: the collector removes them at start
// (dropUnfinished; they were never sent, a reading is sent only once all of it is on
// disk), and the next reading ships their values from the resume point.

import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../atomic.ts";
import { AgentError } from "../errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { TelemetryBatch } from "../../protocol/agent.ts";

export interface SpoolLimits {
  maxBytes: number;
  maxBatches: number;
}

export interface SpoolEntry {
  batch: TelemetryBatch;
  /** Opaque collector state to resume from (see collector.ts). */
  resume?: unknown;
  /** One of the first batches of a reading spooled as several (appendReading): the seq of its last batch. */
  part?: number;
}

export interface Dropped {
  batches: number;
  bytes: number;
}

const FILE = /^b-(\d{20})\.json$/;

type Loose<T> = { [K in keyof T]: T[K] extends string ? T[K] | number : T[K] };
const u64 = (v: string | number | undefined) => String(v ?? 0);

/**
 * A batch as read back from disk. Agents before uint64 went out as decimal strings
 * spooled numbers there (and no loss fields: their losses are counters the API still
 * accepts), so what a restarted, upgraded agent resends is made whole here.
 */
function spooledBatch(b: Loose<TelemetryBatch>): TelemetryBatch {
  return {
    epoch: String(b.epoch),
    seq: u64(b.seq),
    takenAtUnixMs: u64(b.takenAtUnixMs),
    accounting: (b.accounting ?? []).map((a) => ({
      ...a,
      srcBytes: u64(a.srcBytes),
      srcPackets: u64(a.srcPackets),
      dstBytes: u64(a.dstBytes),
      dstPackets: u64(a.dstPackets),
    })),
    quotas: (b.quotas ?? []).map((q) => ({ ...q, limit: u64(q.limit), used: u64(q.used) })),
    counters: (b.counters ?? []).map((c) => ({ ...c, bytes: u64(c.bytes), packets: u64(c.packets) })),
    logs: (b.logs ?? []).map((l) => ({ ...l, unixMs: u64(l.unixMs) })),
    spoolDroppedBatches: u64(b.spoolDroppedBatches),
    spoolDroppedBytes: u64(b.spoolDroppedBytes),
    logsDropped: u64(b.logsDropped),
  };
}
const fileName = (seq: number) => `b-${String(seq).padStart(20, "0")}.json`;

export class Spool {
  /** seq -> size in bytes, for files on disk. */
  private files = new Map<number, number>();
  private dropped: Dropped = { batches: 0, bytes: 0 };
  /** Total ever dropped by this process (a gauge for logs/metrics). */
  droppedTotal: Dropped = { batches: 0, bytes: 0 };

  private constructor(
    readonly dir: string,
    readonly limits: SpoolLimits,
    private readonly log: Logger,
  ) {}

  static async open(dir: string, limits: SpoolLimits, log: Logger): Promise<Spool> {
    const s = new Spool(dir, limits, log);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      throw new AgentError("spool_error", `cannot read spool dir ${dir}: ${(e as Error).message}`, { cause: e });
    }
    for (const n of names) {
      const m = FILE.exec(n);
      if (m) s.files.set(Number(m[1]), (await stat(join(dir, n))).size);
    }
    try {
      const d = JSON.parse(await readFile(join(dir, "dropped.json"), "utf8")) as Dropped;
      if (typeof d.batches === "number" && typeof d.bytes === "number") s.dropped = d;
    } catch {
      // none yet
    }
    return s;
  }

  get count(): number {
    return this.files.size;
  }

  get bytes(): number {
    let b = 0;
    for (const v of this.files.values()) b += v;
    return b;
  }

  /** Highest seq on disk (0 when empty). */
  get lastSeq(): number {
    return Math.max(0, ...this.files.keys());
  }

  /** Drops not yet reported in a batch. */
  get pendingDrops(): Dropped {
    return { ...this.dropped };
  }

  /**
   * Parts of a reading that ends past `resumeSeq`, the collector's resume point: its last
   * batch was never written (the agent stopped in between). A reading whose last batch was
   * written moved the resume point there, even when that batch was acked and is gone.
   */
  async dropUnfinished(resumeSeq: number): Promise<void> {
    let removed = 0;
    for (const seq of [...this.files.keys()].filter((k) => k > resumeSeq)) {
      const part = (await this.read(seq))?.part;
      if (part === undefined || part <= resumeSeq) continue;
      await rm(join(this.dir, fileName(seq)), { force: true });
      this.files.delete(seq);
      removed++;
    }
    if (removed > 0)
      this.log.warn(
        { batches: removed },
        "telemetry spool: removed the first batches of a reading whose last batch was never written (the agent stopped while spooling it); the next reading ships their values",
      );
  }

  /**
   * One reading as one batch or several, in seq order; the oldest batches are dropped first
   * if the bounds require it, nothing of this reading. All but the last are written as
   * parts; the last carries `resumeJson`, the collector's resume point already serialised
   * (its resume file is the same text), spliced in rather than serialised a second time.
   */
  async appendReading(batches: TelemetryBatch[], resumeJson?: string): Promise<void> {
    const last = batches.length - 1;
    const part = Number(batches[last]!.seq);
    const lastData = (b: TelemetryBatch) =>
      resumeJson === undefined ? JSON.stringify({ batch: b }) : `{"batch":${JSON.stringify(b)},"resume":${resumeJson}}`;
    await this.write(
      batches.map((b, i) => ({
        seq: Number(b.seq),
        data: i < last ? JSON.stringify({ batch: b, part }) : lastData(b),
      })),
    );
  }

  private async write(entries: { seq: number; data: string }[]): Promise<void> {
    const size = entries.reduce((n, e) => n + Buffer.byteLength(e.data), 0);
    const order = [...this.files.keys()].sort((a, b) => a - b);
    let bytes = this.bytes;
    let dropped = 0;
    while (
      order.length > 0 &&
      (order.length + entries.length > this.limits.maxBatches || bytes + size > this.limits.maxBytes)
    ) {
      const seq = order.shift()!;
      const sz = this.files.get(seq) ?? 0;
      await rm(join(this.dir, fileName(seq)), { force: true });
      this.files.delete(seq);
      bytes -= sz;
      dropped++;
      this.dropped.batches++;
      this.dropped.bytes += sz;
      this.droppedTotal.batches++;
      this.droppedTotal.bytes += sz;
    }
    if (dropped > 0) {
      await writeFileAtomic(join(this.dir, "dropped.json"), JSON.stringify(this.dropped));
      this.log.warn(
        { dropped, droppedTotal: this.droppedTotal.batches, limits: this.limits },
        "telemetry spool full: oldest batches dropped",
      );
    }
    // Listed (so resent, acked, counted) only once all of them are on disk: a resend in
    // between must not send parts that a restart could still remove.
    for (const [i, e] of entries.entries()) {
      try {
        await writeFileAtomic(join(this.dir, fileName(e.seq)), e.data);
      } catch (err) {
        for (const w of entries.slice(0, i)) await rm(join(this.dir, fileName(w.seq)), { force: true });
        throw new AgentError("spool_error", `cannot write telemetry batch ${e.seq}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    for (const e of entries) this.files.set(e.seq, Buffer.byteLength(e.data));
  }

  /** The batch that carries a drop report has been written: clear the report. */
  async clearDrops(reported: Dropped): Promise<void> {
    this.dropped = {
      batches: Math.max(0, this.dropped.batches - reported.batches),
      bytes: Math.max(0, this.dropped.bytes - reported.bytes),
    };
    await writeFileAtomic(join(this.dir, "dropped.json"), JSON.stringify(this.dropped));
  }

  /** Remove an acknowledged batch. False when it is not (or no longer) spooled. */
  async ack(epoch: string, seq: number): Promise<boolean> {
    if (!this.files.has(seq)) return false;
    const e = await this.read(seq);
    if (e && e.batch.epoch !== epoch) return false;
    await rm(join(this.dir, fileName(seq)), { force: true });
    this.files.delete(seq);
    return true;
  }

  async read(seq: number): Promise<SpoolEntry | undefined> {
    try {
      const e = JSON.parse(await readFile(join(this.dir, fileName(seq)), "utf8")) as SpoolEntry;
      return { ...e, batch: spooledBatch(e.batch) };
    } catch {
      return undefined;
    }
  }

  /** Every spooled batch, oldest first. */
  async pending(): Promise<TelemetryBatch[]> {
    const out: TelemetryBatch[] = [];
    for (const seq of [...this.files.keys()].sort((a, b) => a - b)) {
      const e = await this.read(seq);
      if (e) out.push(e.batch);
    }
    return out;
  }

  /** The oldest spooled batch (the next one the API should ack), if any. */
  async oldest(): Promise<TelemetryBatch | undefined> {
    for (const seq of [...this.files.keys()].sort((a, b) => a - b)) {
      const e = await this.read(seq);
      if (e) return e.batch;
    }
    return undefined;
  }

  /** The newest entry on disk that is not a part (its resume point, after a restart). */
  async newest(): Promise<SpoolEntry | undefined> {
    for (const seq of [...this.files.keys()].sort((a, b) => b - a)) {
      const e = await this.read(seq);
      if (e?.part === undefined) return e;
    }
    return undefined;
  }
}
