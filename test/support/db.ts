// A throwaway PostgreSQL database per test file: uniquely named, migrated with the real
// migrator, and dropped afterwards (WITH FORCE, so leftover connections don't block it).
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { migrate } from "../../src/api/db/migrate.ts";

/** Server to create test databases on; its database part is ignored. */
export const TEST_PG_URL = process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** Delete every key under `prefix:` in the test Redis (a run's queues and claims). */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export function testDatabaseUrl(name: string): string {
  const u = new URL(TEST_PG_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export function uniqueDatabaseName(): string {
  return `palisade_test_${process.pid}_${randomBytes(4).toString("hex")}`;
}

export async function dropDatabase(name: string): Promise<void> {
  const client = new pg.Client({ connectionString: testDatabaseUrl("postgres") });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** Creates and migrates a fresh database; `migrated: false` leaves it not even created. */
export async function createTestDatabase(opts: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const name = uniqueDatabaseName();
  const url = testDatabaseUrl(name);
  const db = { name, url, drop: () => dropDatabase(name) };
  if (opts.migrated === false) return db;
  try {
    await migrate(url);
  } catch (err) {
    await db.drop().catch(() => {});
    throw err;
  }
  return db;
}

/** Run SQL against a test database with a short-lived connection. */
export async function sql<R extends pg.QueryResultRow = Record<string, unknown>>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}
