// The telemetry collector. Every interval (and, through the applier's beforeChange hook,
// just before any kernel change, so the last packets of an object about to be replaced
// or removed are read first) it reads Palisade's tables, turns the cumulative values
// into deltas against the previous reading (delta.ts), and writes one numbered batch to
// the spool before anyone may send it. The reading the batch was computed against is
// stored with it, so a restarted agent continues from exactly where the spool ends:
// nothing is counted twice and nothing between two readings is skipped.

import { readFile } from "node:fs/promises";
import type { Driver } from "../../engine/index.ts";
import { writeFileAtomic } from "../atomic.ts";
import { errorText } from "../errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { AccountingDelta, CounterDelta, LogEvent, QuotaSample, TelemetryBatch } from "../../protocol/agent.ts";
import { delta, readingFromJson, readingToJson, unattributed, type Cum, type Reading } from "./delta.ts";
import {
  parseAccountingKey,
  parseDirectionTotalKey,
  readKernel,
  type Direction,
  type KernelReading,
  type ReadingShape,
} from "./reading.ts";
import type { Spool } from "./spool.ts";

interface Resume {
  seq: number;
  reading: [string, number, number][];
  carry: [string, number, number][];
  quotas: string;
}

export interface CollectorOptions {
  driver: Driver;
  spool: Spool;
  epoch: string;
  log: Logger;
  /** File holding the resume point between batches (state dir). */
  resumeFile: string;
  /** Max log events held between batches; more are dropped and counted. */
  maxLogEvents?: number;
  /** Injected for tests; default reads the kernel through the driver. */
  read?: () => Promise<KernelReading>;
  /** Accounting rows per batch (default MAX_ACCOUNTING_ROWS); tests make it small. */
  maxAccountingRows?: number;
}

/**
 * Accounting rows per batch. A row is 30-120 bytes on the wire (an IPv4 address in a short
 * table name to an IPv6 one in a 32-character name, large counts): 25k rows are at most
 * ~3 MB, and with the most log events a batch holds (maxLogEvents, ~300 bytes each at their
 * longest) and its counters and quotas it stays under the stream's 8 MiB message limit
 * (MAX_MESSAGE_BYTES; collector.test.ts builds that worst case). A reading with more rows
 * (a few busy /16 tables) goes as several batches: one too large would be refused at every
 * resend and stop the host's telemetry for good.
 */
export const MAX_ACCOUNTING_ROWS = 25_000;

const ZERO: Cum = { bytes: 0, packets: 0 };

/** An accounting row while deltas are summed (numbers); the batch carries uint64 as decimal strings. */
interface Row {
  table: string;
  ip: string;
  srcBytes: number;
  srcPackets: number;
  dstBytes: number;
  dstPackets: number;
}
const u64 = (n: number) => String(n);

export class Collector {
  private prev: Reading = new Map();
  /** What the last reading held: readKernel picks its first run by it. */
  private shape: ReadingShape | undefined;
  private carry = new Map<string, Cum>();
  private lastQuotas = "";
  private seq = 0;
  private logs: LogEvent[] = [];
  private logsDropped = 0;
  private running: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private skip: () => boolean = () => false;
  /** Called with every batch once it is on disk. */
  onBatch: (b: TelemetryBatch) => void = () => {};

  private constructor(private readonly o: CollectorOptions) {}

  static async create(o: CollectorOptions): Promise<Collector> {
    const c = new Collector(o);
    let resume: Resume | undefined;
    try {
      resume = JSON.parse(await readFile(o.resumeFile, "utf8")) as Resume;
    } catch {
      resume = undefined;
    }
    const newest = await o.spool.newest();
    const fromSpool = newest?.resume as Resume | undefined;
    if (fromSpool && (!resume || fromSpool.seq > resume.seq)) resume = fromSpool;
    if (resume) {
      c.seq = resume.seq;
      c.prev = readingFromJson(resume.reading);
      c.carry = readingFromJson(resume.carry);
      c.lastQuotas = resume.quotas;
    }
    await o.spool.dropUnfinished(c.seq);
    c.seq = Math.max(c.seq, o.spool.lastSeq);
    return c;
  }

  get lastSeq(): number {
    return this.seq;
  }

  addLogs(events: LogEvent[]): void {
    const max = this.o.maxLogEvents ?? 10_000;
    for (const e of events) {
      if (this.logs.length >= max) {
        this.logs.shift();
        this.logsDropped++;
      }
      this.logs.push(e);
    }
  }

  /** Read now and spool a batch if anything changed (its last batch, when it took several). Calls never overlap. */
  collect(): Promise<TelemetryBatch | undefined> {
    const run = this.running.then(() => this.collectNow());
    this.running = run.catch(() => undefined);
    return run;
  }

  /**
   * Collect every `intervalMs`. `skip`: while it says so the tick is skipped (the applier is
   * busy: its own hooks take the readings around a change, and one in the middle of a change
   * would ship values twice); nothing is lost, the next reading ships it.
   */
  start(intervalMs: number, skip: () => boolean = () => false): void {
    this.stop();
    this.skip = skip;
    this.timer = setInterval(() => void this.tick(), intervalMs);
  }

  /** One interval's reading, unless `skip` says to wait (start). */
  tick(): Promise<TelemetryBatch | undefined> {
    if (this.skip()) return Promise.resolve(undefined);
    return this.collect().catch((e) => {
      this.o.log.warn({ err: errorText(e) }, "telemetry read failed");
      return undefined;
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** After a kernel change that rewound counters (verbatim snapshot restore): start over from now, shipping nothing. */
  rebase(): Promise<void> {
    return this.rebaseWith((cur) => cur);
  }

  /**
   * After a rollback that put back objects with a snapshot's values (shipped before the
   * rolled-back version removed them): each value not in the base starts from what it is
   * now, shipping nothing; the others carry on.
   */
  rebaseNew(): Promise<void> {
    return this.rebaseWith((cur) => {
      for (const [k, v] of this.prev) if (cur.has(k)) cur.set(k, v);
      return cur;
    });
  }

  /** The base becomes `next(reading now)`, kept in the resume file too (a restart must not ship it). */
  private rebaseWith(next: (cur: Reading) => Reading): Promise<void> {
    const run = this.running.then(async () => {
      this.prev = next((await this.read()).counters);
      await this.writeResume(resumeJson(this.seq, this.prev, this.carry, this.lastQuotas));
    });
    this.running = run.catch(() => undefined);
    return run;
  }

  /** A failed write is only logged: the spool's newest batch holds the same point. */
  private writeResume(json: string): Promise<void> {
    return writeFileAtomic(this.o.resumeFile, json).catch((e) =>
      this.o.log.warn({ err: errorText(e) }, "cannot write telemetry resume point"),
    );
  }

  private async read(): Promise<KernelReading> {
    const r = await (this.o.read ? this.o.read() : readKernel(this.o.driver, this.shape));
    this.shape = r.shape;
    return r;
  }

  private async collectNow(): Promise<TelemetryBatch | undefined> {
    const cur = await this.read();
    // Deltas are taken key by key as the reading is walked, not collected into a third
    // map beside the previous and the current reading (65k accounting elements: 65k more
    // entries alive while the batch is built and serialised).
    const prev = this.prev;
    const deltaOf = (k: string): Cum => delta(prev.get(k), cur.counters.get(k) ?? ZERO);
    const rows = new Map<string, Row>();
    const row = (table: string, ip: string) => {
      const k = `${table}\t${ip}`;
      let r = rows.get(k);
      if (!r) rows.set(k, (r = { table, ip, srcBytes: 0, srcPackets: 0, dstBytes: 0, dstPackets: 0 }));
      return r;
    };
    const counters: CounterDelta[] = [];
    const addrSums = new Map<string, Cum>();
    for (const [k, cv] of cur.counters) {
      const v = delta(prev.get(k), cv);
      if (v.bytes === 0 && v.packets === 0) continue;
      const a = parseAccountingKey(k);
      if (a) {
        const r = row(a.table, a.ip);
        if (a.dir === "src") {
          r.srcBytes += v.bytes;
          r.srcPackets += v.packets;
        } else {
          r.dstBytes += v.bytes;
          r.dstPackets += v.packets;
        }
        const sk = `${a.table}\t${a.dir}`;
        const s = addrSums.get(sk) ?? { bytes: 0, packets: 0 };
        addrSums.set(sk, { bytes: s.bytes + v.bytes, packets: s.packets + v.packets });
      } else if (k.startsWith("c\t")) {
        counters.push({ name: k.slice(2), bytes: u64(v.bytes), packets: u64(v.packets) });
      }
    }
    // Unattributed remainders: a direction's total minus its per-address sum, i.e. the
    // packets whose element the kernel could not add (zero otherwise).
    const carry = new Map(this.carry);
    const remainder = (table: string, dir: Direction, total: Cum) => {
      const ck = `${table}\t${dir}`;
      const u = unattributed(total, addrSums.get(ck) ?? ZERO, carry.get(ck) ?? ZERO);
      carry.set(ck, u.carry);
      if (u.emit.bytes === 0 && u.emit.packets === 0) return;
      const r = row(table, "");
      if (dir === "src") {
        r.srcBytes += u.emit.bytes;
        r.srcPackets += u.emit.packets;
      } else {
        r.dstBytes += u.emit.bytes;
        r.dstPackets += u.emit.packets;
      }
    };
    for (const k of cur.counters.keys()) {
      if (k.startsWith("a\t")) continue;
      const dt = parseDirectionTotalKey(k);
      if (dt) {
        remainder(dt.table, dt.dir, deltaOf(k));
        continue;
      }
      if (!k.startsWith("t\t")) continue;
      const table = k.slice(2);
      // One slot (0.0.0.0/0): everything on the src side, as ACCOUNT's slot 0. A legacy
      // single total (applied before per-direction totals) stands for both directions
      // until the table's next apply replaces it.
      remainder(table, "src", deltaOf(k));
      if (cur.legacyTotals.has(table)) remainder(table, "dst", deltaOf(k));
    }
    const quotas: QuotaSample[] = cur.quotas.map((q) => ({
      name: q.name,
      mode: q.mode,
      limit: u64(q.limit),
      used: u64(q.used),
      grow: q.grow,
    }));
    const quotaKey = JSON.stringify(quotas);
    // Losses go out in the batch's own fields until a batch carrying them is on disk.
    const drops = this.o.spool.pendingDrops;
    const logsDropped = this.logsDropped;
    const logs = this.logs;
    this.logs = [];
    const accounting: AccountingDelta[] = [...rows.values()].map((r) => ({
      table: r.table,
      ip: r.ip,
      srcBytes: u64(r.srcBytes),
      srcPackets: u64(r.srcPackets),
      dstBytes: u64(r.dstBytes),
      dstPackets: u64(r.dstPackets),
    }));
    rows.clear(); // garbage before the batch is serialised
    const lost = drops.batches > 0 || logsDropped > 0;
    if (
      accounting.length === 0 &&
      counters.length === 0 &&
      logs.length === 0 &&
      !lost &&
      quotaKey === this.lastQuotas
    ) {
      this.prev = cur.counters;
      this.carry = carry;
      this.logs = logs.concat(this.logs);
      return undefined;
    }
    // The first batches of a large reading hold accounting rows only; the last one holds
    // the rest of the reading and, on disk, the resume point.
    const perBatch = this.o.maxAccountingRows ?? MAX_ACCOUNTING_ROWS;
    const parts = Math.max(1, Math.ceil(accounting.length / perBatch));
    const seq = this.seq + parts;
    const rest = {
      quotas: quotaKey === this.lastQuotas ? [] : quotas,
      counters,
      logs,
      spoolDroppedBatches: u64(drops.batches),
      spoolDroppedBytes: u64(drops.bytes),
      logsDropped: u64(logsDropped),
    };
    const none = {
      quotas: [],
      counters: [],
      logs: [],
      spoolDroppedBatches: "0",
      spoolDroppedBytes: "0",
      logsDropped: "0",
    };
    const batches: TelemetryBatch[] = Array.from({ length: parts }, (_, i) => ({
      epoch: this.o.epoch,
      seq: u64(this.seq + 1 + i),
      takenAtUnixMs: u64(cur.takenAt),
      accounting: parts > 1 ? accounting.slice(i * perBatch, (i + 1) * perBatch) : accounting,
      ...(i === parts - 1 ? rest : none),
    }));
    const batch = batches[parts - 1]!;
    // Serialised once: the spool entry embeds this text and the resume file is this text.
    const resume = resumeJson(seq, cur.counters, carry, quotaKey);
    try {
      await this.o.spool.appendReading(batches, resume);
    } catch (e) {
      this.logs = logs.concat(this.logs); // not durable: keep the events for the next try
      throw e;
    }
    // The batch is durable: only now does the baseline move.
    this.seq = seq;
    this.prev = cur.counters;
    this.carry = carry;
    this.lastQuotas = quotaKey;
    this.logsDropped -= logsDropped;
    if (drops.batches > 0) await this.o.spool.clearDrops(drops);
    await this.writeResume(resume);
    for (const b of batches) this.onBatch(b);
    return batch;
  }
}

function resumeJson(seq: number, reading: Reading, carry: Reading, quotas: string): string {
  return JSON.stringify({
    seq,
    reading: readingToJson(reading),
    carry: readingToJson(carry),
    quotas,
  } satisfies Resume);
}
