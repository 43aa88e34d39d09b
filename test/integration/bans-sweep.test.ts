// Expired ban rows are invisible at once; the telemetry service's maintenance job (run at
// start, then hourly) deletes them so they do not accumulate. Active rows stay.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { loadConfig } from "../../src/api/config.ts";
import { createDb, type Db } from "../../src/api/db/client.ts";
import { DEFAULT_RETENTION } from "../../src/api/telemetry/retention.ts";
import { telemetryService } from "../../src/api/telemetry/service.ts";
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from "../support/db.ts";

let database: TestDatabase;
let db: Db;
before(async () => {
  database = await createTestDatabase();
  db = createDb(database.url);
});
after(async () => {
  await db?.$disconnect();
  await database?.drop();
});

test("the maintenance job deletes expired ban rows and keeps active ones", async () => {
  const ban = (address: string, expiresAt: Date) =>
    db.ban.create({ data: { list: "edge", address, family: "ipv4", prefixLen: 32, createdBy: "test", expiresAt } });
  await ban("198.51.100.1", new Date(Date.now() - 60_000));
  await ban("198.51.100.2", new Date(Date.now() + 3_600_000));
  const prefix = `palisade-test-bull-${randomBytes(4).toString("hex")}`;
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  const config = loadConfig({ DATABASE_URL: database.url, REDIS_URL: TEST_REDIS_URL });
  const log = { info() {}, error() {}, warn() {}, debug() {}, child: () => log } as never;
  const svc = await telemetryService({ prefix, rollupEveryMs: 3_600_000, retention: DEFAULT_RETENTION }).start({
    config,
    db,
    redis,
    log,
  });
  try {
    let left = await db.ban.findMany({ select: { address: true } });
    for (let i = 0; i < 200 && left.length > 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await db.ban.findMany({ select: { address: true } });
    }
    assert.deepEqual(
      left.map((b) => b.address),
      ["198.51.100.2"],
    );
  } finally {
    await svc.stop();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
});
