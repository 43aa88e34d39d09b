// `palisade quotas` (the real bin/palisade in a child process) against a real API,
// PostgreSQL and Redis: a down-counting quota and a growing counter ingested from an
// agent's batch are listed (the growing one as "grow", used only, remaining null in
// JSON); a reset of the growing counter is recorded, audited and published on the
// host's channel like any quota's; errors are one line with exit status 1.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { hostChannel } from "../../src/api/telemetry/channels.ts";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";
import { TEST_REDIS_URL } from "../support/db.ts";
import { batch, makeHost } from "../support/telemetry-batches.ts";

const run = promisify(execFile);
const BIN = join(import.meta.dirname, "../../bin/palisade");
let t: TestApp;
let url: string;
let host: string;

before(async () => {
  t = await startTestApp();
  url = await t.app.listen({ host: "127.0.0.1", port: 0 });
  host = await makeHost(t.db, "quota-edge");
  await ingestTelemetry(
    t,
    host,
    batch("q", 1, Date.now() - 60_000, [], {
      quotas: [
        { name: "daily", mode: "bytes", limit: 10_000, used: 2_500, grow: false },
        { name: "bt", mode: "bytes", limit: 0, used: 123_456, grow: true },
      ],
    }),
  );
});
after(async () => {
  await t?.close();
});

const cli = (args: string[], token: string = ROLE_TOKENS.viewer) =>
  run(process.execPath, [BIN, "quotas", ...args, "--server", url], {
    env: { ...process.env, PALISADE_TOKEN: token },
    timeout: 60_000,
  });

describe("palisade quotas", () => {
  test("ls shows quotas and growing counters; -o json keeps the API's fields", async () => {
    const { stdout } = await cli(["list", "--host", "quota-edge"]);
    assert.equal(
      stdout,
      [
        "HOST        NAME   MODE   KIND   LIMIT  USED    REMAINING",
        "quota-edge  bt     bytes  grow   -      123456  -",
        "quota-edge  daily  bytes  quota  10000  2500    7500",
        "",
      ].join("\n"),
    );
    const items = JSON.parse((await cli(["ls", "--name", "bt", "-o", "json"])).stdout) as {
      name: string;
      grow: boolean;
      used: number;
      remaining: number | null;
    }[];
    assert.deepEqual(
      items.map((q) => [q.name, q.grow, q.used, q.remaining]),
      [["bt", true, 123_456, null]],
    );
  });

  test("reset of a growing counter: recorded, audited, published to the agent's host channel", async () => {
    const sub = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const got: string[] = [];
      await sub.subscribe(hostChannel(host));
      sub.on("message", (_c, m) => got.push(m));
      const { stdout } = await cli(["reset", "quota-edge", "bt"], ROLE_TOKENS.operator);
      const m = /^reset of quota bt on quota-edge requested \(([0-9a-f-]{36})\): sent to the agent\n$/.exec(stdout);
      assert.ok(m, stdout);
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(
        got.map((x) => JSON.parse(x)),
        [{ type: "quota_reset", requestId: m[1], name: "bt" }],
      );
      const row = await t.db.quotaResetRequest.findUniqueOrThrow({ where: { id: m[1]! } });
      assert.deepEqual([row.name, row.status, row.requestedBy], ["bt", "pending", "test-operator"]);
      const audit = await t.db.auditLog.findFirst({
        where: { action: "quota.reset.request" },
        orderBy: { id: "desc" },
      });
      assert.equal(audit?.target, "host:quota-edge");
    } finally {
      sub.disconnect();
    }
  });

  test("errors: `error: <code>: <message>`, a hint where one helps, the documented exit status", async () => {
    for (const [args, token, re, status] of [
      [["reset", "quota-edge", "bt"], ROLE_TOKENS.viewer, /^error: forbidden: .*\nhint: ask an admin/, 6],
      [
        ["reset", "quota-edge", "nope"],
        ROLE_TOKENS.operator,
        /^error: not_found: .*quota "nope" on host "quota-edge"/,
        3,
      ],
      [["ls", "--host", "ghost"], ROLE_TOKENS.viewer, /^error: not_found: host "ghost" not found\n$/, 3],
    ] as [string[], string, RegExp, number][]) {
      await assert.rejects(
        cli(args, token),
        (e: { code?: number; stderr?: string }) => e.code === status && re.test(e.stderr ?? ""),
      );
    }
  });
});
