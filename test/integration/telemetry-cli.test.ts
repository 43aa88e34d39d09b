// `palisade account` (the real bin/palisade in a child process) against a real API:
// -a lists tables, -l shows a table iptaccount-style, -f shows what came since the last
// flush and moves the mark, -c loops (bounded by --count), --host/--from/--to/--json,
// and API errors become one line and exit status 1.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";
import { batch, makeHost } from "../support/telemetry-batches.ts";

const run = promisify(execFile);
const BIN = join(import.meta.dirname, "../../bin/palisade");
let t: TestApp;
let url: string;
let stateDir: string;
let host: string;

before(async () => {
  t = await startTestApp();
  url = await t.app.listen({ host: "127.0.0.1", port: 0 });
  stateDir = await mkdtemp(join(tmpdir(), "palisade-cli-"));
  host = await makeHost(t.db, "cli-edge");
  await ingestTelemetry(
    t,
    host,
    batch("c", 1, Date.now() - 60_000, [
      { table: "sales", ip: "192.168.1.1", srcBytes: 1000, srcPackets: 10, dstBytes: 500, dstPackets: 5 },
      { table: "sales", ip: "", srcBytes: 7, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
      { table: "all_outgoing", ip: "", srcBytes: 9999, srcPackets: 99, dstBytes: 9999, dstPackets: 99 },
    ]),
  );
});
after(async () => {
  await t?.close();
  await rm(stateDir, { recursive: true, force: true });
});

const cli = (args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [BIN, "account", ...args], {
    env: {
      ...process.env,
      PALISADE_URL: url,
      PALISADE_TOKEN: ROLE_TOKENS.viewer,
      PALISADE_STATE_DIR: stateDir,
      ...env,
    },
    timeout: 60_000,
  });

describe("palisade account", () => {
  test("-a lists the tables; -l shows one like iptaccount", async () => {
    assert.equal((await cli(["-a"])).stdout, "all_outgoing\nsales\n");
    const { stdout } = await cli(["-l", "sales", "--host", "cli-edge"]);
    assert.equal(
      stdout,
      [
        "Showing table: sales",
        "Run #0 - 2 items found",
        "IP: (unattributed) SRC packets: 1 bytes: 7 DST packets: 0 bytes: 0",
        "IP: 192.168.1.1 SRC packets: 10 bytes: 1000 DST packets: 5 bytes: 500",
        "",
      ].join("\n"),
    );
  });

  test("-f shows what came since the last flush, then moves the mark; --json; -c --count", async () => {
    const first = JSON.parse((await cli(["-l", "sales", "-f", "--json"])).stdout) as {
      rows: { ip: string; srcBytes: number }[];
      to: string;
    };
    assert.deepEqual(
      first.rows.map((r) => [r.ip, r.srcBytes]),
      [
        ["", 7],
        ["192.168.1.1", 1000],
      ],
    );
    const empty = JSON.parse((await cli(["-l", "sales", "-f", "--json"])).stdout) as { rows: unknown[]; from: string };
    assert.deepEqual(empty.rows, [], "nothing new since the flush");
    assert.equal(empty.from, first.to, "the window starts where the last one ended");
    await ingestTelemetry(
      t,
      host,
      batch("c", 2, Date.now(), [
        { table: "sales", ip: "192.168.1.2", srcBytes: 42, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
      ]),
    );
    const next = JSON.parse((await cli(["-l", "sales", "-f", "--json"])).stdout) as {
      rows: { ip: string; srcBytes: number }[];
    };
    assert.deepEqual(
      next.rows.map((r) => [r.ip, r.srcBytes]),
      [["192.168.1.2", 42]],
    );
    // Without -f the whole history is still there.
    assert.match((await cli(["-l", "sales"])).stdout, /Run #0 - 3 items found/);
    const loop = (await cli(["-l", "sales", "-c", "--count", "2"])).stdout;
    assert.deepEqual(loop.match(/Run #\d+/g), ["Run #0", "Run #1"]);
    const ranged = JSON.parse(
      (
        await cli([
          "-l",
          "sales",
          "--json",
          "--from",
          new Date(Date.now() - 3600_000).toISOString(),
          "--to",
          new Date(Date.now() - 30_000).toISOString(),
        ])
      ).stdout,
    ) as { rows: unknown[] };
    assert.equal(ranged.rows.length, 2);
    const yaml = (await cli(["-a", "-o", "yaml"])).stdout;
    assert.match(yaml, /^---\nrun: 0\ntables:\n/);
  });

  test("errors: `error: <code>: <message>` first, the documented exit status", async () => {
    for (const [args, env, re, status] of [
      [["-l", "nope"], {}, /^error: not_found: accounting table "nope" not found\n/, 3],
      [["-a"], { PALISADE_TOKEN: "wrong" }, /^error: unauthorized: /, 6],
      [["-l", "sales", "--host", "ghost"], {}, /^error: not_found: host "ghost" not found\n/, 3],
      [[], {}, /^error: usage: account: give exactly one of -a or -l/, 2],
      [["-l", "sales", "--from", "yesterday"], {}, /^error: usage: --from: "yesterday" is not a time\nhint: /, 2],
    ] as [string[], Record<string, string>, RegExp, number][]) {
      await assert.rejects(
        cli(args, env),
        (e: { code?: number; stderr?: string }) => e.code === status && re.test(e.stderr ?? ""),
      );
    }
  });
});
