// `palisade server` as a real process: migrates a new database, prints the first admin
// token once as JSON, serves HTTP with it, and exits cleanly on SIGTERM, also when the
// signal arrives while it is still starting.
import assert from "node:assert/strict";
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { createServer } from "node:net";
import type { Readable } from "node:stream";
import { after, test } from "node:test";
import { createTestDatabase, type TestDatabase } from "../support/db.ts";
import { TEST_REDIS_URL } from "../support/db.ts";

const databases: TestDatabase[] = [];
after(async () => {
  for (const db of databases) await db.drop();
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

interface ServerProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  port: number;
  lines: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the first log line matching `pred`; rejects if the process exits first. */
  line(pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Exit status and signal, once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startServer(): Promise<ServerProcess> {
  const db = await createTestDatabase({ migrated: false });
  databases.push(db);
  const port = await freePort();
  const grpcPort = await freePort();
  const child = spawn(new URL("../../bin/palisade", import.meta.url).pathname, ["server"], {
    env: { ...process.env, DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, HOST: "127.0.0.1", PORT: String(port), GRPC_PORT: String(grpcPort), PALISADE_ADMIN_TOKEN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of waiters.filter((w) => w.pred(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  return {
    child,
    port,
    lines,
    stderr: () => stderr,
    exited,
    line(pred) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ pred, resolve });
        void exited.then(({ code, signal }) => reject(new Error(`server exited (${code ?? signal}) before the awaited line: ${stderr}`)));
      });
    },
  };
}

const isListening = (l: Record<string, unknown>) => String(l.msg).startsWith("Server listening");

test("palisade server: migrate, bootstrap admin token, serve, stop on SIGTERM", { timeout: 60_000 }, async () => {
  const s = await startServer();
  try {
    await s.line((l) => l.msg === "server started");
    assert.ok(s.lines.some((l) => l.msg === "applied migration"), "migrated the new database");
    const tokenLine = s.lines.find((l) => typeof l.adminToken === "string");
    assert.ok(tokenLine, "printed the generated admin token");
    assert.match(String(tokenLine.msg), /initial admin API token/);
    const base = `http://127.0.0.1:${s.port}`;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const res = await fetch(`${base}/v1/tokens`, { headers: { authorization: `Bearer ${tokenLine.adminToken}` } });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).items[0].name, "initial-admin");
    assert.ok(!s.lines.some((l) => JSON.stringify(l).includes("authorization")), "auth headers are not logged");
  } finally {
    s.child.kill("SIGTERM");
  }
  assert.deepEqual(await s.exited, { code: 0, signal: null }, s.stderr());
});

// The signal is sent from the stdout handler, in the same tick the line arrives, so it
// lands while the server is still starting what comes after that line.
for (const [when, pred] of [
  ["at its first log line (migrating)", (_l: Record<string, unknown>) => true],
  ["at \"Server listening\" (background services not started yet)", isListening],
] as const) {
  test(`palisade server: SIGTERM ${when} stops it cleanly with status 0`, { timeout: 60_000 }, async () => {
    const s = await startServer();
    const sent = s.line(pred).then((l) => {
      s.child.kill("SIGTERM");
      return l;
    });
    await sent.catch(() => {});
    assert.deepEqual(await s.exited, { code: 0, signal: null }, `exit after SIGTERM ${when}: ${s.stderr()}`);
    await sent;
    assert.ok(s.lines.some((l) => l.msg === "server stopped"), "logged the clean stop");
  });
}
