// `palisade server` as a real process: migrates a new database, writes the first admin
// token to a 0600 file (not the log), serves HTTP with it, and exits cleanly on SIGTERM, also when the
// signal arrives while it is still starting.
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { after, test } from "node:test";
import { isListening, spawnServer, type LogLine, type ServerProcess } from "../support/server-process.ts";

const servers: ServerProcess[] = [];
after(async () => {
  for (const s of servers) await s.stop();
});
async function start(env: Record<string, string> = {}): Promise<ServerProcess> {
  const s = await spawnServer(env);
  servers.push(s);
  return s;
}

test("palisade server: migrate, bootstrap admin token, serve, stop on SIGTERM", { timeout: 60_000 }, async () => {
  const s = await start();
  try {
    await s.line((l) => l.msg === "server started");
    assert.ok(
      s.lines.some((l) => l.msg === "applied migration"),
      "migrated the new database",
    );
    const tokenLine = s.lines.find((l) => typeof l.msg === "string" && l.msg.includes("initial admin API token"));
    assert.ok(tokenLine, "said where the generated admin token is");
    assert.equal(tokenLine.file, s.tokenFile);
    assert.equal(statSync(s.tokenFile).mode & 0o777, 0o600, "the token file is private to the server's user");
    const adminToken = s.adminToken();
    assert.match(adminToken, /^pal_/);
    assert.ok(!s.lines.some((l) => JSON.stringify(l).includes(adminToken)), "the token is not in the log");
    const base = `http://127.0.0.1:${s.port}`;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const res = await fetch(`${base}/v1/tokens`, { headers: { authorization: `Bearer ${adminToken}` } });
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
  ["at its first log line (migrating)", (_l: LogLine) => true],
  ['at "Server listening" (background services not started yet)', isListening],
] as const) {
  test(`palisade server: SIGTERM ${when} stops it cleanly with status 0`, { timeout: 60_000 }, async () => {
    const s = await start();
    const sent = s.line(pred).then((l) => {
      s.child.kill("SIGTERM");
      return l;
    });
    await sent.catch(() => {});
    assert.deepEqual(await s.exited, { code: 0, signal: null }, `exit after SIGTERM ${when}: ${s.stderr()}`);
    await sent;
    assert.ok(
      s.lines.some((l) => l.msg === "server stopped"),
      "logged the clean stop",
    );
  });
}

test("palisade server: health and readiness probes log at debug, other requests at info", {
  timeout: 60_000,
}, async () => {
  const s = await start({ LOG_LEVEL: "debug" });
  try {
    await s.line((l) => l.msg === "server started");
    const base = `http://127.0.0.1:${s.port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/v1/tokens`)).status, 401);
    const completed = (url: string) => s.line((l) => l.msg === "request completed" && requestUrl(s, l) === url);
    const probes = await Promise.all([completed("/healthz"), completed("/readyz")]);
    const api = await completed("/v1/tokens");
    for (const url of ["/healthz", "/readyz", "/v1/tokens"]) {
      const lines = s.lines.filter(
        (l) => (l.msg === "incoming request" || l.msg === "request completed") && requestUrl(s, l) === url,
      );
      assert.equal(lines.length, 2, `${url}: one incoming and one completed line`);
      assert.deepEqual(
        lines.map((l) => l.level),
        url === "/v1/tokens" ? [30, 30] : [20, 20],
        url,
      );
    }
    assert.deepEqual(
      probes.map((l) => l.level),
      [20, 20],
    );
    assert.equal(api.level, 30);
  } finally {
    s.child.kill("SIGTERM");
  }
  assert.deepEqual(await s.exited, { code: 0, signal: null }, s.stderr());
});

/** The URL of a request's log line: on "incoming request" itself, on "request completed" through its reqId. */
function requestUrl(s: ServerProcess, l: LogLine): string | undefined {
  const incoming = s.lines.find((x) => x.msg === "incoming request" && x.reqId === l.reqId);
  return (incoming?.req as { url?: string } | undefined)?.url;
}
