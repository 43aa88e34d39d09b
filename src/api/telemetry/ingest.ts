// Telemetry ingest: one TelemetryBatch from one host's agent -> Postgres, exactly once.
//
// The gRPC stream handler (src/api/grpc) calls ingestTelemetry(ctx, hostId, batch) for
// every TelemetryBatch, with the host id it derived from the agent's credential, and
// sends TelemetryAck{epoch, seq} when it resolves — also for a duplicate, whose first
// copy is already committed (the agent resends until acknowledged).
//
// Exactly once: the batch's (host_id, epoch, seq) row in telemetry_batches is inserted
// first, in the same transaction as the data. A second copy — a resend after a lost
// ack, or the same batch arriving on two connections at once — conflicts on that
// primary key (the second inserter waits for the first transaction, then sees the
// row) and stores nothing. Out-of-order seqs are fine: each seq is its own row.
//
// Storage choices (docs/telemetry.md):
// - raw samples go to accounting_samples at the batch's taken-at time, clamped into
//   [now - MAX_LATE, now + MAX_SKEW] so a long-offline agent's spooled batches land in
//   retained partitions (their bytes are kept, at a later time) and a skewed clock
//   cannot write the future;
// - the unattributed remainder (ip "") is stored with address 0.0.0.0/0 (UNATTRIBUTED):
//   an inet that is never a host address, so queries group and show it unambiguously;
// - rows go in by one COPY ... FROM STDIN (pg-copy-streams) straight into the
//   partitioned accounting_samples, on the same connection and in the same transaction as
//   the ledger row: a duplicate stores nothing, a failed COPY rolls the ledger row back.
//   COPY is ~2x a multi-row INSERT ... SELECT FROM unnest(arrays) here (bench/ingest.ts);
//   the transaction therefore runs on a node-postgres client of the Db's pool, not in a
//   Prisma transaction (Prisma has no COPY);
// - the minute bucket is marked dirty for the rollups (rollups.ts);
// - quotas are upserted unless the stored sample came from a later batch (seq) of the same
//   agent epoch; counters add their deltas;
// - log events are inserted, then published on palisade:logs after the commit.
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Redis } from "ioredis";
import type { PoolClient } from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { poolOf, type Db } from "../db/client.ts";
import { parseBatch, UNATTRIBUTED, type Batch } from "./batch.ts";
import { LOGS_CHANNEL, type LogEventView } from "./channels.ts";

export interface TelemetryContext {
  db: Db;
  /** For the log fan-out; without it events are stored but not streamed. */
  redis?: Redis;
  log?: { warn(obj: object, msg: string): void };
}

export interface IngestResult {
  /** True when this (host, epoch, seq) was already ingested: nothing was stored now. */
  duplicate: boolean;
  epoch: string;
  seq: string;
  accountingRows: number;
  logEvents: number;
}

export const MAX_LATE_MS = 2 * 24 * 3600_000;
export const MAX_SKEW_MS = 5 * 60_000;

export function sampleTime(takenAtMs: number, now = Date.now()): Date {
  return new Date(Math.min(Math.max(takenAtMs, now - MAX_LATE_MS), now + MAX_SKEW_MS));
}

const s = (b: bigint) => b.toString();

/** One statement in the ingest transaction (node-postgres: bigints come back as strings). */
type Query = <R = Record<string, unknown>>(sql: string, ...params: unknown[]) => Promise<R[]>;

async function inTransaction<T>(db: Db, fn: (q: Query, client: PoolClient) => Promise<T>): Promise<T> {
  const client = await poolOf(db).connect();
  const q: Query = async (sql, ...params) => (await client.query(sql, params)).rows;
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const out = await fn(q, client);
    await client.query("COMMIT");
    return out;
  } catch (e) {
    await client.query("ROLLBACK").catch((r: Error) => (broken = r));
    throw e;
  } finally {
    client.release(broken);
  }
}

export async function ingestTelemetry(ctx: TelemetryContext, hostId: string, raw: unknown): Promise<IngestResult> {
  const batch = parseBatch(raw);
  const at = sampleTime(Number(batch.takenAtUnixMs));
  const result: IngestResult = {
    duplicate: false,
    epoch: batch.epoch,
    seq: batch.seq.toString(),
    accountingRows: batch.accounting.length,
    logEvents: batch.logs.length,
  };
  const published = await inTransaction(ctx.db, async (q, client) => {
    const fresh = await q(
      `INSERT INTO telemetry_batches (host_id, epoch, seq, taken_at, accounting_rows, log_events)
       VALUES ($1::uuid, $2, $3::bigint, $4::timestamptz, $5, $6) ON CONFLICT DO NOTHING RETURNING seq`,
      hostId,
      batch.epoch,
      s(batch.seq),
      at,
      batch.accounting.length,
      batch.logs.length,
    );
    if (fresh.length === 0) return undefined;
    await insertAccounting(q, client, hostId, at, batch);
    await upsertQuotas(q, hostId, at, batch);
    await addCounters(q, hostId, batch);
    return insertLogs(q, hostId, batch);
  });
  if (published === undefined) return { ...result, duplicate: true, accountingRows: 0, logEvents: 0 };
  await publishLogs(ctx, published);
  return result;
}

/** COPY text format: backslash, tab, newline and carriage return escaped. */
const copyText = (v: string) =>
  /[\\\t\n\r]/.test(v) ? v.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r") : v;

async function insertAccounting(q: Query, client: PoolClient, hostId: string, at: Date, b: Batch): Promise<void> {
  if (b.accounting.length === 0) return;
  const prefix = `${at.toISOString()}\t${hostId}\t`;
  const lines: string[] = [];
  for (const r of b.accounting) {
    const ip = r.ip === "" ? UNATTRIBUTED : r.ip;
    lines.push(
      `${prefix}${copyText(r.table)}\t${ip}\t${s(r.srcBytes)}\t${s(r.srcPackets)}\t${s(r.dstBytes)}\t${s(r.dstPackets)}\n`,
    );
  }
  await pipeline(
    Readable.from([lines.join("")]),
    client.query(
      copyFrom(
        `COPY accounting_samples (at, host_id, table_name, address, src_bytes, src_packets, dst_bytes, dst_packets) FROM STDIN`,
      ),
    ),
  );
  const tables = [...new Set(b.accounting.map((r) => r.table))];
  await q(
    `INSERT INTO accounting_tables (host_id, table_name, first_at, last_at)
     SELECT $1::uuid, t, $2::timestamptz, $2::timestamptz FROM unnest($3::text[]) AS t
     ON CONFLICT (host_id, table_name) DO UPDATE SET
       first_at = LEAST(accounting_tables.first_at, EXCLUDED.first_at),
       last_at = GREATEST(accounting_tables.last_at, EXCLUDED.last_at)`,
    hostId,
    at,
    tables,
  );
  // DO UPDATE (not DO NOTHING): the hit count changes, so a rollup run that read the mark
  // before these samples committed keeps it (it deletes only marks whose count it read).
  await q(
    `INSERT INTO telemetry_dirty (host_id, bucket) VALUES ($1::uuid, date_trunc('minute', $2::timestamptz))
     ON CONFLICT (host_id, bucket) DO UPDATE SET hits = telemetry_dirty.hits + 1`,
    hostId,
    at,
  );
}

async function upsertQuotas(q: Query, hostId: string, at: Date, b: Batch): Promise<void> {
  if (b.quotas.length === 0) return;
  const byName = new Map(b.quotas.map((q) => [q.name, q])); // one row per name (last wins)
  const x = [...byName.values()];
  await q(
    `INSERT INTO quota_states (host_id, name, mode, grow, "limit", used, sampled_at, sample_epoch, sample_seq, updated_at)
     SELECT $1::uuid, n, m::quota_mode, g, l, u, $2::timestamptz, $8, $9::bigint, now()
     FROM unnest($3::text[], $4::text[], $5::boolean[], $6::bigint[], $7::bigint[]) AS x(n, m, g, l, u)
     ON CONFLICT (host_id, name) DO UPDATE SET
       mode = EXCLUDED.mode, grow = EXCLUDED.grow, "limit" = EXCLUDED."limit", used = EXCLUDED.used,
       sampled_at = EXCLUDED.sampled_at, sample_epoch = EXCLUDED.sample_epoch, sample_seq = EXCLUDED.sample_seq,
       updated_at = now()
     WHERE CASE
       -- The agent's order within an epoch, whatever its clock says.
       WHEN quota_states.sample_epoch = EXCLUDED.sample_epoch THEN quota_states.sample_seq < EXCLUDED.sample_seq
       -- A sample stored before batches were recorded: by time, as then.
       WHEN quota_states.sample_epoch IS NULL THEN quota_states.sampled_at IS NULL OR quota_states.sampled_at <= EXCLUDED.sampled_at
       -- A new epoch (the agent's state was reset): its batches are the ones still coming.
       ELSE true
     END`,
    hostId,
    at,
    x.map((v) => v.name),
    x.map((v) => v.mode),
    x.map((v) => v.grow),
    x.map((v) => s(v.limit)),
    x.map((v) => s(v.used)),
    b.epoch,
    s(b.seq),
  );
}

async function addCounters(q: Query, hostId: string, b: Batch): Promise<void> {
  if (b.counters.length === 0) return;
  const sum = new Map<string, { bytes: bigint; packets: bigint }>();
  for (const c of b.counters) {
    const cur = sum.get(c.name) ?? { bytes: 0n, packets: 0n };
    sum.set(c.name, { bytes: cur.bytes + c.bytes, packets: cur.packets + c.packets });
  }
  const names = [...sum.keys()];
  await q(
    `INSERT INTO counter_totals (host_id, name, bytes, packets, updated_at)
     SELECT $1::uuid, n, b, p, now() FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS x(n, b, p)
     ON CONFLICT (host_id, name) DO UPDATE SET
       bytes = counter_totals.bytes + EXCLUDED.bytes, packets = counter_totals.packets + EXCLUDED.packets, updated_at = now()`,
    hostId,
    names,
    names.map((n) => s(sum.get(n)!.bytes)),
    names.map((n) => s(sum.get(n)!.packets)),
  );
}

async function insertLogs(q: Query, hostId: string, b: Batch): Promise<LogEventView[]> {
  if (b.logs.length === 0) return [];
  const fields = b.logs.map((e) => {
    const f: Record<string, string | number> = {};
    for (const k of ["iif", "oif", "saddr", "daddr", "protocol"] as const) if (e[k] !== "") f[k] = e[k];
    for (const k of ["sport", "dport", "length"] as const) if (e[k] !== 0) f[k] = e[k];
    return JSON.stringify(f);
  });
  const rows = await q<{ id: string; at: Date; host: string | null }>(
    `WITH ins AS (
       INSERT INTO log_events (at, host_id, prefix, level, mark, ctmark, fields)
       SELECT to_timestamp(ms / 1000.0), $1::uuid, p, l, m, c, f
       FROM unnest($2::bigint[], $3::text[], $4::int[], $5::bigint[], $6::bigint[], $7::jsonb[]) WITH ORDINALITY AS x(ms, p, l, m, c, f, ord)
       ORDER BY ord
       RETURNING id, at)
     SELECT ins.id, ins.at, (SELECT name FROM hosts WHERE id = $1::uuid) AS host FROM ins ORDER BY ins.id`,
    hostId,
    b.logs.map((e) => s(e.unixMs)),
    b.logs.map((e) => e.prefix),
    b.logs.map((e) => e.level),
    b.logs.map((e) => String(e.mark)),
    b.logs.map((e) => (e.ctmark === null ? null : String(e.ctmark))),
    fields,
  );
  return rows.map((r, i) => {
    const e = b.logs[i]!;
    return {
      id: r.id.toString(),
      at: r.at.toISOString(),
      hostId,
      host: r.host ?? hostId,
      prefix: e.prefix,
      level: e.level,
      mark: e.mark,
      ctmark: e.ctmark,
      fields: JSON.parse(fields[i]!) as Record<string, string | number>,
    };
  });
}

async function publishLogs(ctx: TelemetryContext, events: LogEventView[]): Promise<void> {
  if (!ctx.redis || events.length === 0) return;
  try {
    const pipe = ctx.redis.pipeline();
    for (const e of events) pipe.publish(LOGS_CHANNEL, JSON.stringify(e));
    await pipe.exec();
  } catch (err) {
    // The events are stored; only live viewers miss them. Never fail (and so re-send) the batch for it.
    ctx.log?.warn({ err }, "log events stored but not published to live streams");
  }
}
