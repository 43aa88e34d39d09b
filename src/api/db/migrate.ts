// Applies prisma/migrations/*/migration.sql the way `prisma migrate deploy` does, so
// either tool can manage the same database: same `_prisma_migrations` table, same
// checksum (sha256 hex of the file), same advisory lock key. Differences, on purpose:
// each migration runs in one transaction (a failure leaves nothing behind and no
// "failed" row), and the database is created when it does not exist.
import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { installRoot } from "../../runtime/install-root.ts";
import { silentLog, type Log } from "../log.ts";

export const DEFAULT_MIGRATIONS_DIR = join(installRoot(import.meta.url), "prisma/migrations");

/** The key Prisma's migration engine locks on PostgreSQL, so the two tools exclude each other. */
const PRISMA_ADVISORY_LOCK_KEY = 72707369;

const MIGRATIONS_TABLE_DDL = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                  VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"            VARCHAR(64) NOT NULL,
    "finished_at"         TIMESTAMPTZ,
    "migration_name"      VARCHAR(255) NOT NULL,
    "logs"                TEXT,
    "rolled_back_at"      TIMESTAMPTZ,
    "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

export class MigrationError extends Error {
  constructor(
    readonly code: "checksum_mismatch" | "failed_migration" | "migration_failed" | "unknown_migration",
    message: string,
  ) {
    super(message);
    this.name = "MigrationError";
  }
}

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

export interface MigrateOptions {
  dir?: string;
  log?: Log;
}

export function checksumOf(sql: string): string {
  return createHash("sha256").update(sql).digest("hex");
}

/** Prisma accepts a checksum computed with either line ending (git may convert them). */
function checksumMatches(sql: string, checksum: string): boolean {
  return [sql, sql.replace(/\r\n/g, "\n"), sql.replace(/\r?\n/g, "\r\n")].some((s) => checksumOf(s) === checksum);
}

export async function readMigrations(dir = DEFAULT_MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: checksumOf(sql) };
    }),
  );
}

/** CREATE DATABASE if it is missing; tolerates another process creating it at the same time. */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const dbName = decodeURIComponent(target.pathname.replace(/^\//, ""));
  if (!dbName) throw new Error("DATABASE_URL names no database");
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [dbName]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(dbName)}`);
      return true;
    } catch (err) {
      // 42P04 duplicate_database, 23505: pg_database unique index hit by a concurrent create.
      const code = (err as { code?: string }).code;
      if (code === "42P04" || code === "23505") return false;
      throw err;
    }
  } finally {
    await client.end();
  }
}

export async function migrate(url: string, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const log = opts.log ?? silentLog;
  const files = await readMigrations(opts.dir);
  if (await ensureDatabase(url)) log.info({ database: new URL(url).pathname.slice(1) }, "created database");

  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Session-level lock: a second replica waits here until the first has finished.
    await client.query("SELECT pg_advisory_lock($1)", [PRISMA_ADVISORY_LOCK_KEY]);
    try {
      await client.query(MIGRATIONS_TABLE_DDL);
      const rows = await client.query<{
        migration_name: string;
        checksum: string;
        finished_at: Date | null;
        rolled_back_at: Date | null;
      }>(`SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at`);
      const applied = new Map<string, string>();
      for (const row of rows.rows) {
        if (row.rolled_back_at) continue;
        if (!row.finished_at) {
          throw new MigrationError(
            "failed_migration",
            `migration ${row.migration_name} is recorded as started but not finished (a failed \`prisma migrate deploy\`?); resolve it with \`prisma migrate resolve\` before migrating`,
          );
        }
        applied.set(row.migration_name, row.checksum);
      }
      const byName = new Map(files.map((f) => [f.name, f]));
      for (const [name, checksum] of applied) {
        const file = byName.get(name);
        if (!file) {
          // Prisma only warns here; a newer replica may have applied a migration this build lacks.
          log.info({ migration: name }, "database has a migration this build does not know");
          continue;
        }
        if (!checksumMatches(file.sql, checksum)) {
          throw new MigrationError(
            "checksum_mismatch",
            `migration ${name} was modified after it was applied: database checksum ${checksum}, file checksum ${file.checksum}. Applied migrations must not change; add a new migration instead.`,
          );
        }
      }
      const result: MigrateResult = { applied: [], alreadyApplied: [...applied.keys()].filter((n) => byName.has(n)) };
      for (const file of files) {
        if (applied.has(file.name)) continue;
        await applyOne(client, file);
        result.applied.push(file.name);
        log.info({ migration: file.name }, "applied migration");
      }
      return result;
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [PRISMA_ADVISORY_LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}

async function applyOne(client: pg.Client, file: MigrationFile): Promise<void> {
  const id = randomUUID();
  await client.query("BEGIN");
  try {
    await client.query(
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)`,
      [id, file.checksum, file.name],
    );
    await client.query(file.sql);
    // clock_timestamp(): now() is frozen at transaction start, finished_at should not be.
    await client.query(
      `UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = $1`,
      [id],
    );
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK");
    throw new MigrationError(
      "migration_failed",
      `migration ${file.name} failed and was rolled back: ${(err as Error).message}`,
    );
  }
}
