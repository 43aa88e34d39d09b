// Ingest benchmark: accounting rows per second through ingestTelemetry (the function the
// gRPC stream handler calls per TelemetryBatch: validation, ledger row, unnest insert,
// catalog and dirty-mark upserts, one transaction) into Postgres, printed beside a raw
// COPY (psql COPY FROM STDIN, one psql process per batch) of the same rows into the same
// table in the same run. Median of several runs.
// The gRPC hop itself (protobuf decode, HTTP/2) is not included: see the report.
// Uses a dedicated database, dropped at the end.   Run: node --import tsx bench/ingest.ts
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { createDb } from "../src/api/db/client.ts";
import { ingestTelemetry } from "../src/api/telemetry/ingest.ts";
import { createTestDatabase } from "../test/support/db.ts";

const RUNS = Number(process.env.RUNS ?? 5);
const BATCHES = Number(process.env.BATCHES ?? 20);
const ROWS = Number(process.env.ROWS ?? 5000); // per batch (a /19 with traffic every interval)

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

const database = await createTestDatabase();
const db = createDb(database.url);
try {
  const host = (await db.host.create({ data: { name: `bench-${randomBytes(3).toString("hex")}` } })).id;
  const rows = Array.from({ length: ROWS }, (_, i) => ({ table: "lan", ip: ip(i + 1), srcBytes: 1000 + i, srcPackets: 10, dstBytes: 500, dstPackets: 5 }));
  const ingestRates: number[] = [];
  const copyRates: number[] = [];
  let seq = 0;
  for (let run = 0; run < RUNS; run++) {
    let t0 = performance.now();
    for (let b = 0; b < BATCHES; b++) await ingestTelemetry({ db }, host, { epoch: "bench", seq: ++seq, takenAtUnixMs: Date.now(), accounting: rows });
    ingestRates.push((BATCHES * ROWS) / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    for (let b = 0; b < BATCHES; b++) {
      const at = new Date().toISOString();
      // COPY through psql (node-postgres has no COPY without another package): one psql per batch.
      const input = rows.map((r) => `${at}\t${host}\tlan\t${r.ip}\t${r.srcBytes}\t${r.srcPackets}\t${r.dstBytes}\t${r.dstPackets}\n`).join("");
      const r = spawnSync("psql", [database.url, "-q", "-c", "COPY accounting_samples (at, host_id, table_name, address, src_bytes, src_packets, dst_bytes, dst_packets) FROM STDIN"], { input });
      if (r.status !== 0) throw new Error(`psql COPY failed: ${r.stderr}`);
    }
    copyRates.push((BATCHES * ROWS) / ((performance.now() - t0) / 1000));
    process.stderr.write(`run ${run + 1}/${RUNS}: ingest ${Math.round(ingestRates[run]!)} rows/s, COPY ${Math.round(copyRates[run]!)} rows/s\n`);
  }
  const i = median(ingestRates);
  const c = median(copyRates);
  console.log(`ingestTelemetry: ${Math.round(i)} rows/s (median of ${RUNS} runs x ${BATCHES} batches x ${ROWS} rows)`);
  console.log(`raw COPY:        ${Math.round(c)} rows/s`);
  console.log(`ratio ingest/COPY: ${(i / c).toFixed(2)}`);
} finally {
  await db.$disconnect();
  await database.drop();
}
