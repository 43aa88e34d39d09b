// The web console's session: an API token traded for an HttpOnly, SameSite=Strict cookie
// (Secure over TLS), the token's role applied, CSRF header required on every write,
// revoking the token or signing out ends the session; and the console's files are served
// by the API itself.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { buildConsole } from "../../scripts/build-console.ts";
import { ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";

let t: TestApp;
before(async () => {
  await buildConsole();
  t = await startTestApp();
});
after(async () => {
  await t?.close();
});

async function signIn(token: string, headers: Record<string, string> = {}) {
  const res = await t.app.inject({ method: "POST", url: "/v1/session", payload: { token }, headers });
  const cookie = String(res.headers["set-cookie"] ?? "");
  return {
    res,
    cookie,
    sid: /palisade_session=([^;]*)/.exec(cookie)?.[1] ?? "",
    body: res.json() as { role: string; csrfToken: string; name: string },
  };
}
const as = (
  sid: string,
  method: "GET" | "POST" | "DELETE" | "PATCH",
  url: string,
  opts: { csrf?: string; body?: unknown } = {},
) =>
  t.app.inject({
    method,
    url,
    headers: { cookie: `palisade_session=${sid}`, ...(opts.csrf && { "x-csrf-token": opts.csrf }) },
    ...(opts.body !== undefined && { payload: opts.body as object }),
  });

describe("console session", () => {
  test("a wrong token gets 401 and no cookie", async () => {
    const { res, cookie } = await signIn("pal_not-a-real-token");
    assert.equal(res.statusCode, 401);
    assert.equal(cookie, "");
  });

  test("the cookie is HttpOnly, SameSite=Strict, expiring, Secure only over TLS", async () => {
    const plain = await signIn(ROLE_TOKENS.viewer);
    assert.equal(plain.res.statusCode, 200, plain.res.body);
    assert.match(plain.cookie, /HttpOnly/);
    assert.match(plain.cookie, /SameSite=Strict/);
    assert.match(plain.cookie, /Max-Age=28800/);
    assert.match(plain.cookie, /Path=\//);
    assert.doesNotMatch(plain.cookie, /Secure/);
    assert.equal(plain.body.role, "viewer");
    const tls = await signIn(ROLE_TOKENS.viewer, { "x-forwarded-proto": "https" });
    assert.match(tls.cookie, /; Secure/);
    assert.notEqual(tls.sid, plain.sid, "every sign-in is a new session");
  });

  test("reads work with the cookie; writes need the session's CSRF header", async () => {
    const { sid, body } = await signIn(ROLE_TOKENS.operator);
    assert.equal((await as(sid, "GET", "/v1/hosts")).statusCode, 200);
    const session = await as(sid, "GET", "/v1/session");
    assert.equal(session.json().role, "operator");
    const noCsrf = await as(sid, "POST", "/v1/rulesets", { body: { name: "csrf-a" } });
    assert.equal(noCsrf.statusCode, 403, noCsrf.body);
    assert.match(noCsrf.json().error.message, /x-csrf-token/);
    const wrong = await as(sid, "POST", "/v1/rulesets", {
      body: { name: "csrf-a" },
      csrf: "x".repeat(body.csrfToken.length),
    });
    assert.equal(wrong.statusCode, 403);
    assert.equal(await t.db.ruleset.count({ where: { name: "csrf-a" } }), 0, "nothing was written");
    const ok = await as(sid, "POST", "/v1/rulesets", { body: { name: "csrf-a" }, csrf: body.csrfToken });
    assert.equal(ok.statusCode, 201, ok.body);
  });

  test("a viewer's session cannot write even with the CSRF header", async () => {
    const { sid, body } = await signIn(ROLE_TOKENS.viewer);
    const res = await as(sid, "POST", "/v1/rulesets", { body: { name: "viewer-write" }, csrf: body.csrfToken });
    assert.equal(res.statusCode, 403);
    assert.match(res.json().error.message, /admin or operator/);
  });

  test("revoking the token ends its sessions; signing out ends one", async () => {
    const created = await t.req("POST", "/v1/tokens", { body: { name: "console-revoke", role: "viewer" } });
    const { token, id } = created.json() as { token: string; id: string };
    const { sid } = await signIn(token);
    assert.equal((await as(sid, "GET", "/v1/hosts")).statusCode, 200);
    assert.equal((await t.req("DELETE", `/v1/tokens/${id}`)).statusCode, 204);
    assert.equal((await as(sid, "GET", "/v1/hosts")).statusCode, 401);

    const other = await signIn(ROLE_TOKENS.viewer);
    const out = await as(other.sid, "DELETE", "/v1/session");
    assert.equal(out.statusCode, 204);
    assert.match(String(out.headers["set-cookie"]), /palisade_session=; .*Max-Age=0/);
    assert.equal((await as(other.sid, "GET", "/v1/hosts")).statusCode, 401);
  });

  test("/ serves the console and its assets from this server, with a strict CSP", async () => {
    const index = await t.app.inject({ method: "GET", url: "/" });
    assert.equal(index.statusCode, 200);
    assert.match(String(index.headers["content-type"]), /text\/html/);
    assert.match(String(index.headers["content-security-policy"]), /default-src 'self'/);
    assert.match(index.body, /<script type="module" src="\/console\/app.js">/);
    assert.doesNotMatch(index.body, /https?:\/\//, "no CDN");
    const js = await t.app.inject({ method: "GET", url: "/console/app.js" });
    assert.equal(js.statusCode, 200);
    assert.match(String(js.headers["content-type"]), /javascript/);
    assert.match(js.body, /uPlot|u-legend/, "uPlot is bundled");
    assert.equal((await t.app.inject({ method: "GET", url: "/console/..%2Fpackage.json" })).statusCode, 400);
  });
});

describe("console sign-in limits per client address", () => {
  let limited: TestApp;
  before(async () => {
    limited = await startTestApp({ rateLimitPerMinute: 3 });
  });
  after(async () => {
    await limited?.close();
  });
  const signInFrom = (remoteAddress: string, token: string) =>
    limited.app.inject({ method: "POST", url: "/v1/session", remoteAddress, payload: { token } });
  const readFrom = (remoteAddress: string, token: string) =>
    limited.app.inject({
      method: "GET",
      url: "/v1/hosts",
      remoteAddress,
      headers: { authorization: `Bearer ${token}` },
    });
  const message = (res: { json(): unknown }) => (res.json() as { error: { code: string; message: string } }).error;

  test("wrong tokens at sign-in count as failed authentications of the address: then 429 before any lookup, for bearer requests too", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await readFrom("192.0.2.40", `pal_guess-${i}`)).statusCode);
    statuses.push((await signInFrom("192.0.2.40", ROLE_TOKENS.viewer)).statusCode);
    assert.deepEqual(statuses, [401, 401, 401, 429], "bearer guesses stop sign-in from that address");
    for (let i = 0; i < 3; i++) assert.equal((await signInFrom("192.0.2.41", `pal_guess-${i}`)).statusCode, 401);
    const res = await readFrom("192.0.2.41", ROLE_TOKENS.viewer);
    assert.equal(res.statusCode, 429, "sign-in guesses stop bearer requests from that address");
    assert.match(message(res).message, /failed authentications from this address/);
    assert.ok(Number(res.headers["retry-after"]) > 0);
    // Another address is not affected.
    assert.equal((await signInFrom("192.0.2.42", ROLE_TOKENS.viewer)).statusCode, 200);
  });

  test("sign-in attempts are counted per address by the general rate limit, even with right tokens", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await signInFrom("192.0.2.50", ROLE_TOKENS.viewer)).statusCode);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal((await signInFrom("192.0.2.50", ROLE_TOKENS.viewer)).json().error.code, "rate_limited");
    assert.equal((await signInFrom("192.0.2.51", ROLE_TOKENS.viewer)).statusCode, 200, "per address, not global");
  });

  test("X-Forwarded-For is believed only from PALISADE_TRUST_PROXY: behind it clients have their own limits, elsewhere a forged header changes nothing", async () => {
    const proxied = await startTestApp({ rateLimitPerMinute: 3, trustProxy: ["192.0.2.60"] });
    try {
      const via = (app: TestApp, remoteAddress: string, client: string) =>
        app.app.inject({
          method: "POST",
          url: "/v1/session",
          remoteAddress,
          headers: { "x-forwarded-for": client },
          payload: { token: ROLE_TOKENS.viewer },
        });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await via(proxied, "192.0.2.60", "198.51.100.1")).statusCode);
      assert.deepEqual(statuses, [200, 200, 200, 429], "one client behind the proxy is limited");
      assert.equal(
        (await via(proxied, "192.0.2.60", "198.51.100.2")).statusCode,
        200,
        "another client behind the same proxy is not",
      );
      // A peer that is not a trusted proxy cannot pick its address with the header.
      const forged: number[] = [];
      for (let i = 0; i < 4; i++) forged.push((await via(limited, "192.0.2.61", `198.51.100.${10 + i}`)).statusCode);
      assert.deepEqual(forged, [200, 200, 200, 429]);
    } finally {
      await proxied.close();
    }
  });
});
