// No secret in the log: `palisade server` as a real process at LOG_LEVEL=trace, driven
// through a normal flow (first admin token, API tokens, console sign-in, an enrollment,
// an agent stream, a deployment it applies, refused requests with made-up tokens), with
// every stdout (pino JSON) and stderr line collected; none may contain any secret that was
// issued or presented.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { SimAgent, waitFor } from "./grpc-kit.ts";
import { spawnServer, type ServerProcess } from "../support/server-process.ts";
import { validPolicy } from "../support/policies.ts";

let s: ServerProcess | undefined;
after(async () => {
  await s?.stop();
});

test("a full run logs no token, enrollment token, credential, session or CSRF secret", { timeout: 120_000 }, async () => {
  s = await spawnServer({ LOG_LEVEL: "trace" });
  await s.line((l) => l.msg === "server started");
  const base = `http://127.0.0.1:${s.port}`;
  const secrets = new Map<string, string>();
  const admin = s.adminToken();
  secrets.set("initial admin token", admin);
  const call = async (method: string, path: string, token: string | null, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
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
    assert.equal((await call("POST", "/v1/rulesets/web/versions", op.body.token, { policy: validPolicy() })).status, 201);
    const dep = await call("POST", "/v1/deployments", op.body.token, { ruleset: "web", version: 1, selector: { hosts: ["edge-secrets"] } });
    assert.equal(dep.status, 202, JSON.stringify(dep.body));
    await waitFor(async () => (await call("GET", `/v1/deployments/${dep.body.id}`, admin)).body.status === "succeeded", 30_000, "deployment succeeded");

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
  assert.ok(lines.some((l) => l.includes("incoming request")), "request logging was on");
  const everything = [...lines, ...s.stderr().split("\n")];
  for (const [what, secret] of secrets) {
    assert.ok(secret.length >= 16, what);
    const hit = everything.find((l) => l.includes(secret));
    assert.equal(hit, undefined, `the ${what} appears in the log`);
  }
  // Nothing that looks like a bearer or an issued secret either, whoever issued it.
  const pattern = /pal(enroll)?_[A-Za-z0-9_-]{20,}|Bearer\s+\S{8,}|"(authorization|cookie|password|secret|credential|token)"\s*:\s*"[^"]{8,}/i;
  const suspicious = everything.filter((l) => pattern.test(l));
  assert.deepEqual(suspicious, [], "secret-like values in the log");
});
