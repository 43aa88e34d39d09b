// `palisade server` as a real process: migrates a new database, prints the first admin
// token once as JSON, serves HTTP with it, and exits cleanly on SIGTERM.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { after, test } from "node:test";
import { createTestDatabase, type TestDatabase } from "../support/db.ts";
import { TEST_REDIS_URL } from "../support/db.ts";

let db: TestDatabase | undefined;
after(async () => {
  await db?.drop();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

test("palisade server: migrate, bootstrap admin token, serve, stop on SIGTERM", { timeout: 60_000 }, async () => {
  db = await createTestDatabase({ migrated: false });
  const port = await freePort();
  const child = spawn(new URL("../../bin/palisade", import.meta.url).pathname, ["server"], {
    env: { ...process.env, DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, HOST: "127.0.0.1", PORT: String(port), PALISADE_ADMIN_TOKEN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      let buf = "";
      child.stdout.on("data", (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          lines.push(JSON.parse(line) as Record<string, unknown>);
          if (String(lines.at(-1)!.msg).startsWith("Server listening")) resolve();
        }
      });
      void exited.then((code) => reject(new Error(`server exited (${code}) before listening: ${stderr}`)));
    });
    assert.ok(lines.some((l) => l.msg === "applied migration"), "migrated the new database");
    const tokenLine = lines.find((l) => typeof l.adminToken === "string");
    assert.ok(tokenLine, "printed the generated admin token");
    assert.match(String(tokenLine.msg), /initial admin API token/);
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const res = await fetch(`${base}/v1/tokens`, { headers: { authorization: `Bearer ${tokenLine.adminToken}` } });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).items[0].name, "initial-admin");
    assert.ok(!lines.some((l) => JSON.stringify(l).includes("authorization")), "auth headers are not logged");
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal(await exited, 0, stderr);
});
