// No secret in the log: `palisade server` as a real process at LOG_LEVEL=trace, driven
// through a normal flow (first admin token, API tokens, console sign-in, an enrollment,
// an agent stream, a deployment it applies, refused requests with made-up tokens), with
// every stdout (pino JSON) and stderr line collected; none may contain any secret that was
// issued or presented.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { memoryLog } from "../../src/runtime/log.ts";
import { StateDir } from "../../src/agent/state.ts";
import { decryptKey } from "../../src/api/tls/ca.ts";
import { SimAgent, waitFor } from "../support/grpc-fleet.ts";
import { sql } from "../support/db.ts";
import { freePort } from "../support/ports.ts";
import { spawnServer, type ServerProcess } from "../support/server-process.ts";
import { validPolicy } from "../support/policies.ts";
import { noKernelAgent } from "../support/no-kernel-agent.ts";

let s: ServerProcess | undefined;
let tlsServer: ServerProcess | undefined;
const dirs: string[] = [];
after(async () => {
  await s?.stop();
  await tlsServer?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every line of both streams that contains one of `secrets` (by name), and every secret-shaped value. */
function leaks(server: ServerProcess, secrets: Map<string, string>): string[] {
  const everything = [...server.lines.map((l) => JSON.stringify(l)), ...server.stderr().split("\n")];
  const out: string[] = [];
  for (const [what, secret] of secrets) {
    assert.ok(secret.length >= 16, what);
    const hit = everything.find((l) => l.includes(secret));
    if (hit) out.push(`${what}: ${hit}`);
  }
  const pattern =
    /pal(enroll)?_[A-Za-z0-9_-]{20,}|Bearer\s+\S{8,}|PRIVATE KEY|"(authorization|cookie|password|secret|credential|token|keyPem|key)"\s*:\s*"[^"]{8,}/i;
  for (const l of everything) if (pattern.test(l)) out.push(`secret-shaped: ${l}`);
  return out;
}

test("a full run logs no token, enrollment token, credential, session or CSRF secret", {
  timeout: 120_000,
}, async () => {
  // The plaintext lab mode on purpose: only there does the agent's bearer credential cross
  // the stream (in its metadata), so only there can the server's request logging leak it.
  s = await spawnServer({ LOG_LEVEL: "trace", PALISADE_GRPC_PLAINTEXT: "1" });
  await s.line((l) => l.msg === "server started");
  const base = `http://127.0.0.1:${s.port}`;
  const secrets = new Map<string, string>();
  const admin = s.adminToken();
  secrets.set("initial admin token", admin);
  const call = async (
    method: string,
    path: string,
    token: string | null,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };

  const op = await call("POST", "/v1/tokens", admin, { name: "ci-operator", role: "operator" });
  assert.equal(op.status, 201);
  secrets.set("operator token", op.body.token);

  // The console: sign in with a token, the session id comes back in a cookie.
  const signIn = await call("POST", "/v1/session", null, { token: op.body.token });
  assert.equal(signIn.status, 200, JSON.stringify(signIn.body));
  const sid = /palisade_session=([^;]+)/.exec(signIn.headers.get("set-cookie") ?? "")?.[1];
  assert.ok(sid);
  secrets.set("session id", sid);
  secrets.set("CSRF token", signIn.body.csrfToken);
  assert.equal((await call("GET", "/v1/hosts", null, undefined, { cookie: `palisade_session=${sid}` })).status, 200);

  const enroll = await call("POST", "/v1/enrollment-tokens", admin, { labels: { role: "edge" } });
  assert.equal(enroll.status, 201);
  secrets.set("enrollment token", enroll.body.token);
  const agent = await SimAgent.enroll(`127.0.0.1:${s.grpcPort}`, enroll.body.token, "edge-secrets");
  secrets.set("agent credential", agent.credential);
  await agent.connect();
  try {
    assert.equal((await call("POST", "/v1/rulesets", op.body.token, { name: "web" })).status, 201);
    assert.equal(
      (await call("POST", "/v1/rulesets/web/versions", op.body.token, { policy: validPolicy() })).status,
      201,
    );
    const dep = await call("POST", "/v1/deployments", op.body.token, {
      ruleset: "web",
      version: 1,
      selector: { hosts: ["edge-secrets"] },
    });
    assert.equal(dep.status, 202, JSON.stringify(dep.body));
    await waitFor(
      async () => (await call("GET", `/v1/deployments/${dep.body.id}`, admin)).body.status === "succeeded",
      30_000,
      "deployment succeeded",
    );

    // Refused attempts: a made-up token, a revoked one, a wrong enrollment token.
    const madeUp = "pal_thisIsAMadeUpTokenThatMustNotBeLogged0000000";
    secrets.set("made-up token", madeUp);
    assert.equal((await call("GET", "/v1/hosts", madeUp)).status, 401);
    assert.equal((await call("DELETE", `/v1/tokens/${op.body.id}`, admin)).status, 204);
    assert.equal((await call("GET", "/v1/hosts", op.body.token)).status, 401);
    const wrongEnroll = "palenroll_aWrongEnrollmentTokenThatMustNotBeLogged00";
    secrets.set("wrong enrollment token", wrongEnroll);
    await assert.rejects(SimAgent.enroll(`127.0.0.1:${s.grpcPort}`, wrongEnroll, "edge-wrong"));
  } finally {
    agent.close();
  }

  const lines = s.lines.map((l) => JSON.stringify(l));
  assert.ok(lines.length > 30, `collected the log (${lines.length} lines)`);
  assert.ok(
    lines.some((l) => l.includes("incoming request")),
    "request logging was on",
  );
  assert.deepEqual(leaks(s, secrets), []);
});

test("with mutual TLS: no PALISADE_SECRET_KEY, CA key or agent key in the log either", {
  timeout: 120_000,
}, async () => {
  const secretKey = "log-secrets-test-key-0123456789abcdefghijklmnop";
  const enrollPort = await freePort();
  tlsServer = await spawnServer({
    LOG_LEVEL: "trace",
    PALISADE_GRPC_PLAINTEXT: "0",
    PALISADE_SECRET_KEY: secretKey,
    GRPC_ENROLL_PORT: String(enrollPort),
    PALISADE_TLS_SERVER_NAMES: "127.0.0.1,localhost",
  });
  const srv = tlsServer;
  await srv.line((l) => l.msg === "server started");
  const admin = srv.adminToken();
  const secrets = new Map<string, string>([
    ["initial admin token", admin],
    ["PALISADE_SECRET_KEY", secretKey],
  ]);
  const res = await fetch(`http://127.0.0.1:${srv.port}/v1/enrollment-tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(res.status, 201);
  const enrollToken = ((await res.json()) as { token: string }).token;
  secrets.set("enrollment token", enrollToken);
  const [row] = await sql<{ key_encrypted: string; cert_pem: string }>(
    srv.database.url,
    "SELECT key_encrypted, cert_pem FROM certificate_authority",
  );
  const caKey = decryptKey(row!.key_encrypted, secretKey, row!.cert_pem);
  // A line from the middle of the PEM body: the key is unmistakable by it.
  secrets.set("CA private key", caKey.split("\n")[2]!);
  const dir = mkdtempSync(join(tmpdir(), "palisade-log-secrets-"));
  dirs.push(dir);
  const state = await StateDir.open(dir);
  let connected = 0;
  const client = noKernelAgent({
    server: `127.0.0.1:${srv.grpcPort}`,
    enrollServer: `127.0.0.1:${enrollPort}`,
    name: "edge-tls",
    enrollToken,
    state,
    log: memoryLog("debug"),
    connected: () => void connected++,
  });
  try {
    await client.start();
    await waitFor(() => connected > 0, 20_000, "the agent's mutual-TLS stream to open");
    assert.ok(client.mutualTls);
    const tls = await state.readTls();
    secrets.set("agent private key", tls!.keyPem.split("\n")[2]!);
  } finally {
    client.stop();
  }
  assert.deepEqual(leaks(srv, secrets), []);
});
