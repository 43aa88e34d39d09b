// Ingest benchmark: accounting rows per second through ingestTelemetry (the function the
// gRPC stream handler calls per TelemetryBatch: validation, ledger row, COPY of the rows,
// catalog and dirty-mark upserts, one transaction) into Postgres, beside the baseline of
// ONE COPY stream (pg-copy-streams, one connection) of the same rows into the same table
// in the same run. The two alternate which goes first in each run, so neither always
// writes into the emptier table. Median of several runs.
// The gRPC hop itself (protobuf decode, HTTP/2) is not included: see bench/README.md.
// Uses a dedicated database, dropped at the end.
//   Run: node --import tsx bench/ingest.ts   (RUNS, BATCHES, ROWS per batch via env)
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
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
const raw = new pg.Client({ connectionString: database.url });
await raw.connect();
try {
  const host = (await db.host.create({ data: { name: `bench-${randomBytes(3).toString("hex")}` } })).id;
  const rows = Array.from({ length: ROWS }, (_, i) => ({
    table: "lan",
    ip: ip(i + 1),
    srcBytes: 1000 + i,
    srcPackets: 10,
    dstBytes: 500,
    dstPackets: 5,
  }));
  const ingestRates: number[] = [];
  const copyRates: number[] = [];
  let seq = 0;
  const viaIngest = async () => {
    const t0 = performance.now();
    for (let b = 0; b < BATCHES; b++)
      await ingestTelemetry({ db }, host, { epoch: "bench", seq: ++seq, takenAtUnixMs: Date.now(), accounting: rows });
    return (BATCHES * ROWS) / ((performance.now() - t0) / 1000);
  };
  const viaCopy = async () => {
    const t0 = performance.now();
    // The baseline: every row of the run in one COPY stream (text built per batch, as the
    // ingest must too), one connection, no transaction around it but COPY's own.
    function* chunks() {
      for (let b = 0; b < BATCHES; b++) {
        const at = new Date().toISOString();
        yield rows
          .map((r) => `${at}\t${host}\tlan\t${r.ip}\t${r.srcBytes}\t${r.srcPackets}\t${r.dstBytes}\t${r.dstPackets}\n`)
          .join("");
      }
    }
    await pipeline(
      Readable.from(chunks()),
      raw.query(
        copyFrom(
          "COPY accounting_samples (at, host_id, table_name, address, src_bytes, src_packets, dst_bytes, dst_packets) FROM STDIN",
        ),
      ),
    );
    return (BATCHES * ROWS) / ((performance.now() - t0) / 1000);
  };
  for (let run = 0; run < RUNS; run++) {
    if (run % 2 === 0) {
      ingestRates.push(await viaIngest());
      copyRates.push(await viaCopy());
    } else {
      copyRates.push(await viaCopy());
      ingestRates.push(await viaIngest());
    }
    process.stderr.write(
      `run ${run + 1}/${RUNS} (${run % 2 === 0 ? "ingest first" : "COPY first"}): ingest ${Math.round(ingestRates[run]!)} rows/s, one COPY ${Math.round(copyRates[run]!)} rows/s\n`,
    );
  }
  const i = median(ingestRates);
  const c = median(copyRates);
  const [{ n }] = (await raw.query<{ n: string }>("SELECT count(*)::text AS n FROM accounting_samples")).rows as [
    { n: string },
  ];
  console.log(
    `ingestTelemetry:      ${Math.round(i)} rows/s (median of ${RUNS} runs x ${BATCHES} batches x ${ROWS} rows; ${n} rows stored at the end)`,
  );
  console.log(`one COPY stream:      ${Math.round(c)} rows/s (same rows, same table, same run)`);
  console.log(`ratio ingest/COPY:    ${(i / c).toFixed(2)} (goal >= 0.5)`);
} finally {
  await raw.end();
  await db.$disconnect();
  await database.drop();
}
