// The migrator: idempotent, safe when two processes start at once, refuses edited
// migrations, rolls a failed migration back entirely, and records rows the way
// `prisma migrate deploy` does.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { DEFAULT_MIGRATIONS_DIR, migrate, MigrationError, readMigrations } from "../../src/api/db/migrate.ts";
import { createTestDatabase, sql, type TestDatabase } from "../support/db.ts";

const created: TestDatabase[] = [];
after(async () => {
  await Promise.all(created.map((d) => d.drop()));
});
async function fresh(migrated = false) {
  const d = await createTestDatabase({ migrated });
  created.push(d);
  return d;
}

const PALISADE = new URL("../../bin/palisade", import.meta.url).pathname;
function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PALISADE, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("migrate", () => {
  test("creates the database, applies every migration, and records them like prisma migrate deploy", async () => {
    const d = await fresh();
    const files = await readMigrations();
    assert.ok(files.length >= 1);
    const r = await migrate(d.url);
    assert.deepEqual(
      r.applied,
      files.map((f) => f.name),
    );
    const rows = await sql<{
      migration_name: string;
      checksum: string;
      finished_at: Date | null;
      applied_steps_count: number;
      rolled_back_at: Date | null;
      logs: string | null;
    }>(d.url, `SELECT * FROM "_prisma_migrations" ORDER BY started_at`);
    assert.deepEqual(
      rows.map((x) => x.migration_name),
      files.map((f) => f.name),
    );
    for (const [i, row] of rows.entries()) {
      const onDisk = await readFile(join(DEFAULT_MIGRATIONS_DIR, row.migration_name, "migration.sql"));
      assert.equal(row.checksum, createHash("sha256").update(onDisk).digest("hex"), `checksum of ${files[i]!.name}`);
      assert.ok(row.finished_at instanceof Date);
      assert.equal(row.applied_steps_count, 1);
      assert.equal(row.rolled_back_at, null);
      assert.equal(row.logs, null);
    }
    // Same table shape as Prisma's migration engine creates.
    const cols = await sql<{ column_name: string; data_type: string; is_nullable: string }>(
      d.url,
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    assert.deepEqual(
      cols.map((c) => `${c.column_name} ${c.data_type} ${c.is_nullable}`),
      [
        "id character varying NO",
        "checksum character varying NO",
        "finished_at timestamp with time zone YES",
        "migration_name character varying NO",
        "logs text YES",
        "rolled_back_at timestamp with time zone YES",
        "started_at timestamp with time zone NO",
        "applied_steps_count integer NO",
      ],
    );
  });

  test("a second run is a no-op", async () => {
    const d = await fresh(true);
    const before = await sql(d.url, `SELECT id, started_at FROM "_prisma_migrations" ORDER BY id`);
    const r = await migrate(d.url);
    assert.deepEqual(r.applied, []);
    assert.equal(r.alreadyApplied.length, before.length);
    assert.deepEqual(await sql(d.url, `SELECT id, started_at FROM "_prisma_migrations" ORDER BY id`), before);
  });

  test("two processes migrating the same new database at once: one applies, the other waits and finds nothing to do", async () => {
    const d = await fresh();
    const [a, b] = await Promise.all([
      runCli(["migrate"], { DATABASE_URL: d.url }),
      runCli(["migrate"], { DATABASE_URL: d.url }),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const summaries = [a, b].map((r) => {
      const last = r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { msg: string; applied?: string[] })
        .find((l) => l.msg === "database schema is current");
      assert.ok(last, `no summary line in ${r.stdout}`);
      return last.applied!.length;
    });
    const files = await readMigrations();
    assert.deepEqual(summaries.sort(), [0, files.length]);
    const rows = await sql<{ n: string }>(d.url, `SELECT count(*) AS n FROM "_prisma_migrations"`);
    assert.equal(Number(rows[0]!.n), files.length);
  });

  test("refuses to run when an applied migration's file changed", async () => {
    const d = await fresh(true);
    await sql(d.url, `UPDATE "_prisma_migrations" SET checksum = repeat('0', 64)`);
    await assert.rejects(migrate(d.url), (err: unknown) => {
      assert.ok(err instanceof MigrationError);
      assert.equal(err.code, "checksum_mismatch");
      assert.match(err.message, /was modified after it was applied/);
      return true;
    });
  });

  test("a migration that fails leaves nothing behind: no table, no row", async () => {
    const d = await fresh();
    const dir = await mkdtemp(join(tmpdir(), "palisade-migrations-"));
    try {
      await mkdir(join(dir, "20200101000000_ok"));
      await writeFile(join(dir, "20200101000000_ok", "migration.sql"), `CREATE TABLE "one" (id int);`);
      await mkdir(join(dir, "20200102000000_broken"));
      await writeFile(
        join(dir, "20200102000000_broken", "migration.sql"),
        `CREATE TABLE "two" (id int);\nTHIS IS NOT SQL;`,
      );
      await assert.rejects(
        migrate(d.url, { dir }),
        (err: unknown) => err instanceof MigrationError && err.code === "migration_failed",
      );
      const tables = await sql<{ t: string }>(
        d.url,
        `SELECT tablename::text AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`,
      );
      assert.deepEqual(
        tables.map((x) => x.t),
        ["_prisma_migrations", "one"],
      );
      const rows = await sql<{ migration_name: string }>(d.url, `SELECT migration_name FROM "_prisma_migrations"`);
      assert.deepEqual(
        rows.map((x) => x.migration_name),
        ["20200101000000_ok"],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("refuses a database with a started-but-unfinished migration (as prisma leaves a failed one)", async () => {
    const d = await fresh(true);
    await sql(
      d.url,
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name) VALUES ('x', repeat('a', 64), '20990101000000_half')`,
    );
    await assert.rejects(
      migrate(d.url),
      (err: unknown) => err instanceof MigrationError && err.code === "failed_migration",
    );
  });

  test("ruleset versions are immutable in the database itself", async () => {
    const d = await fresh(true);
    await sql(d.url, `INSERT INTO rulesets (name) VALUES ('r')`);
    await sql(
      d.url,
      `INSERT INTO ruleset_versions (ruleset_id, number, document, checksum, author) SELECT id, 1, '{}', 'c', 'a' FROM rulesets`,
    );
    await assert.rejects(
      sql(d.url, `UPDATE ruleset_versions SET message = 'rewritten'`),
      /immutable \(UPDATE refused\)/,
    );
    await assert.rejects(sql(d.url, `DELETE FROM ruleset_versions`), /immutable \(DELETE refused\)/);
    const rows = await sql<{ message: string }>(d.url, `SELECT message FROM ruleset_versions`);
    assert.deepEqual(rows, [{ message: "" }]);
  });

  test("the telemetry tables are partitioned and take rows (inet addresses, bigint counters)", async () => {
    const d = await fresh(true);
    await sql(
      d.url,
      `INSERT INTO accounting_samples (at, host_id, table_name, address, src_bytes) VALUES (now(), gen_random_uuid(), 't', '10.1.2.3', 9007199254740993)`,
    );
    const rows = await sql<{ address: string; src_bytes: string }>(
      d.url,
      `SELECT address::text, src_bytes::text FROM accounting_samples`,
    );
    assert.deepEqual(rows, [{ address: "10.1.2.3/32", src_bytes: "9007199254740993" }]);
    await sql(d.url, `SELECT palisade_ensure_partition('accounting_samples', '2026_11', '2026-11-01', '2026-12-01')`);
    await sql(
      d.url,
      `INSERT INTO accounting_samples (at, host_id, table_name, address) VALUES ('2026-11-15', gen_random_uuid(), 't', '10.0.0.1')`,
    );
    const parts = await sql<{ p: string; n: string }>(
      d.url,
      `SELECT tableoid::regclass::text AS p, count(*) AS n FROM accounting_samples GROUP BY 1 ORDER BY 1`,
    );
    assert.ok(
      parts.some((x) => x.p === "accounting_samples_2026_11"),
      JSON.stringify(parts),
    );
  });
});
