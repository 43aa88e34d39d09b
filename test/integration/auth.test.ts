// Who may do what: the role matrix over every route group, token lifecycle, and the
// first admin token.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FastifyBaseLogger } from "fastify";
import { hashSecret } from "../../src/api/auth.ts";
import { ensureAdminToken } from "../../src/api/bootstrap.ts";
import { errorOf, startTestApp, type TestApp, type TestRole } from "../support/app.ts";
import { validPolicy } from "../support/policies.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp();
  await t.req("POST", "/v1/rulesets", { body: { name: "matrix" } });
  await t.req("POST", "/v1/rulesets/matrix/versions", { body: { policy: validPolicy() } });
  await t.db.host.create({ data: { name: "h1" } });
});
after(async () => {
  await t?.close();
});

type Access = "read" | "operate" | "admin";
interface RouteCase {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  url: string;
  access: Access;
  body?: (role: string) => unknown;
  /** Status an allowed caller gets (the call itself must succeed, not just pass auth). */
  ok: number;
}

const ROUTES: RouteCase[] = [
  { method: "GET", url: "/v1/rulesets", access: "read", ok: 200 },
  { method: "POST", url: "/v1/rulesets", access: "operate", body: (r) => ({ name: `by-${r}` }), ok: 201 },
  { method: "GET", url: "/v1/rulesets/matrix", access: "read", ok: 200 },
  {
    method: "POST",
    url: "/v1/rulesets/matrix/versions",
    access: "operate",
    body: () => ({ policy: validPolicy() }),
    ok: 201,
  },
  { method: "GET", url: "/v1/rulesets/matrix/versions", access: "read", ok: 200 },
  { method: "GET", url: "/v1/rulesets/matrix/versions/1", access: "read", ok: 200 },
  { method: "GET", url: "/v1/rulesets/matrix/versions/1/render", access: "read", ok: 200 },
  { method: "GET", url: "/v1/rulesets/matrix/diff?from=1&to=1", access: "read", ok: 200 },
  { method: "POST", url: "/v1/validate", access: "operate", body: () => ({ policy: validPolicy() }), ok: 200 },
  {
    method: "POST",
    url: "/v1/tokens",
    access: "admin",
    body: (r) => ({ name: `made-by-${r}`, role: "viewer" }),
    ok: 201,
  },
  { method: "GET", url: "/v1/tokens", access: "admin", ok: 200 },
  { method: "GET", url: "/v1/audit", access: "read", ok: 200 },
  { method: "GET", url: "/v1/hosts", access: "read", ok: 200 },
  { method: "GET", url: "/v1/hosts/h1", access: "read", ok: 200 },
  { method: "PATCH", url: "/v1/hosts/h1", access: "admin", body: () => ({ labels: { env: "test" } }), ok: 200 },
  { method: "POST", url: "/v1/enrollment-tokens", access: "admin", body: () => ({}), ok: 201 },
  { method: "GET", url: "/v1/enrollment-tokens", access: "admin", ok: 200 },
];
const ALLOWED: Record<Access, TestRole[]> = {
  read: ["admin", "operator", "viewer"],
  operate: ["admin", "operator"],
  admin: ["admin"],
};

describe("role matrix", () => {
  for (const route of ROUTES) {
    test(`${route.method} ${route.url} (${route.access})`, async () => {
      for (const role of ["viewer", "operator", "admin"] as TestRole[]) {
        const res = await t.req(route.method, route.url, { as: role, body: route.body?.(role) });
        if (ALLOWED[route.access].includes(role)) {
          assert.equal(res.statusCode, route.ok, `${role}: ${res.body}`);
        } else {
          assert.equal(res.statusCode, 403, `${role}: ${res.body}`);
          assert.equal(errorOf(res).code, "forbidden");
        }
      }
      const none = await t.req(route.method, route.url, { as: null, body: route.body?.("none") });
      assert.equal(none.statusCode, 401);
      assert.equal(errorOf(none).code, "unauthorized");
      assert.match(String(none.headers["www-authenticate"]), /^Bearer/);
      const bad = await t.req(route.method, route.url, {
        as: { token: "not-a-real-token" },
        body: route.body?.("bad"),
      });
      assert.equal(bad.statusCode, 401);
      const malformed = await t.req(route.method, route.url, {
        headers: { authorization: "Basic dXNlcjpwYXNz" },
        as: null,
      });
      assert.equal(malformed.statusCode, 401);
    });
  }

  test("DELETE /v1/tokens/:id (admin)", async () => {
    const id = randomUUID();
    for (const role of ["viewer", "operator"] as TestRole[])
      assert.equal((await t.req("DELETE", `/v1/tokens/${id}`, { as: role })).statusCode, 403);
    assert.equal((await t.req("DELETE", `/v1/tokens/${id}`, { as: null })).statusCode, 401);
    assert.equal((await t.req("DELETE", `/v1/tokens/${id}`)).statusCode, 404);
  });

  test("forbidden requests write nothing", async () => {
    const before = await t.db.auditLog.count();
    assert.equal((await t.req("POST", "/v1/rulesets", { as: "viewer", body: { name: "viewer-try" } })).statusCode, 403);
    assert.equal(
      (await t.req("POST", "/v1/tokens", { as: "operator", body: { name: "op-try", role: "admin" } })).statusCode,
      403,
    );
    assert.equal(await t.db.ruleset.count({ where: { name: "viewer-try" } }), 0);
    assert.equal(await t.db.apiToken.count({ where: { name: "op-try" } }), 0);
    assert.equal(await t.db.auditLog.count(), before);
  });

  test("public endpoints need no token", async () => {
    for (const url of ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]) {
      const res = await t.req("GET", url, { as: null });
      assert.ok(res.statusCode === 200 || res.statusCode === 302, `${url}: ${res.statusCode}`);
    }
  });
});

describe("tokens", () => {
  test("create returns the secret once; it works with its role; list never shows secrets or hashes", async () => {
    const res = await t.req("POST", "/v1/tokens", { body: { name: "ci-bot", role: "operator" } });
    assert.equal(res.statusCode, 201, res.body);
    const created = res.json();
    assert.match(created.token, /^pal_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.role, "operator");
    const row = await t.db.apiToken.findUnique({ where: { name: "ci-bot" } });
    assert.equal(row?.tokenHash, hashSecret(created.token), "stored hashed");
    assert.notEqual(row?.tokenHash, created.token);

    const asBot = await t.req("POST", "/v1/rulesets", { as: { token: created.token }, body: { name: "from-bot" } });
    assert.equal(asBot.statusCode, 201);
    assert.ok((await t.db.apiToken.findUnique({ where: { name: "ci-bot" } }))?.lastUsedAt, "last use recorded");
    assert.equal((await t.req("GET", "/v1/tokens", { as: { token: created.token } })).statusCode, 403);

    const list = await t.req("GET", "/v1/tokens?limit=500");
    assert.ok(!list.body.includes(created.token));
    assert.ok(!list.body.includes(row!.tokenHash));
    assert.ok(list.json().items.some((i: { name: string }) => i.name === "ci-bot"));
    const audit = await t.db.auditLog.findFirst({ where: { action: "token.create", target: "token:ci-bot" } });
    assert.ok(audit && !JSON.stringify(audit.details).includes(created.token));
  });

  test("duplicate token name is 409; bad role is 400", async () => {
    assert.equal((await t.req("POST", "/v1/tokens", { body: { name: "twice", role: "viewer" } })).statusCode, 201);
    assert.equal((await t.req("POST", "/v1/tokens", { body: { name: "twice", role: "viewer" } })).statusCode, 409);
    assert.equal((await t.req("POST", "/v1/tokens", { body: { name: "root", role: "superuser" } })).statusCode, 400);
  });

  test("revoke: 204, the token stops working at once, revoking again is 204, audited", async () => {
    const created = (await t.req("POST", "/v1/tokens", { body: { name: "short-lived", role: "viewer" } })).json();
    assert.equal((await t.req("GET", "/v1/rulesets", { as: { token: created.token } })).statusCode, 200);
    assert.equal((await t.req("DELETE", `/v1/tokens/${created.id}`)).statusCode, 204);
    const after = await t.req("GET", "/v1/rulesets", { as: { token: created.token } });
    assert.equal(after.statusCode, 401);
    assert.match(errorOf(after).message, /revoked/);
    assert.equal((await t.req("DELETE", `/v1/tokens/${created.id}`)).statusCode, 204);
    assert.equal(await t.db.auditLog.count({ where: { action: "token.revoke", target: "token:short-lived" } }), 1);
    assert.equal((await t.req("DELETE", "/v1/tokens/not-a-uuid")).statusCode, 400);
  });

  test("the last active admin token cannot be revoked (409)", async () => {
    const admins = await t.db.apiToken.findMany({ where: { role: "admin", revokedAt: null } });
    const others = admins.filter((a) => a.name !== "test-admin");
    for (const o of others) assert.equal((await t.req("DELETE", `/v1/tokens/${o.id}`)).statusCode, 204);
    const self = admins.find((a) => a.name === "test-admin")!;
    const res = await t.req("DELETE", `/v1/tokens/${self.id}`);
    assert.equal(res.statusCode, 409);
    assert.match(errorOf(res).message, /last active admin/);
    assert.equal((await t.db.apiToken.findUnique({ where: { id: self.id } }))?.revokedAt, null);
  });
});

describe("first admin token", () => {
  /** Records what ensureAdminToken logs (the JSON rendering is pino's; server.test.ts sees the real line). */
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const at = (level: string) => (fields: object | string, msg?: string) =>
      lines.push(typeof fields === "string" ? { level, msg: fields } : { level, ...fields, msg });
    const log = {
      info: at("info"),
      warn: at("warn"),
      error: at("error"),
      debug: at("debug"),
    } as unknown as FastifyBaseLogger;
    return { log, lines };
  }

  test("with no admin token at all, one is generated into a 0600 file (not the log), and works", async () => {
    const t2 = await startTestApp();
    const dir = mkdtempSync(join(tmpdir(), "palisade-bootstrap-"));
    try {
      await t2.db.apiToken.deleteMany({});
      const tokenFile = join(dir, "admin-token");
      // A symlink planted at the path is replaced, not written through.
      const victim = join(dir, "victim");
      writeFileSync(victim, "keep me\n");
      symlinkSync(victim, tokenFile);
      const { log, lines } = capture();
      const r = await ensureAdminToken(t2.db, undefined, log, { tokenFile });
      assert.equal(r.kind, "generated");
      const token = readFileSync(tokenFile, "utf8").trim();
      assert.match(token, /^pal_/);
      assert.equal(lstatSync(tokenFile).mode & 0o777, 0o600);
      assert.ok(lstatSync(tokenFile).isFile());
      assert.equal(readFileSync(victim, "utf8"), "keep me\n");
      const line = lines.find((l) => l.file === tokenFile);
      assert.ok(line, JSON.stringify(lines));
      assert.match(String(line.msg), /mode 0600/);
      assert.ok(!JSON.stringify(lines).includes(token), "the token is not logged");
      assert.equal(
        (await t2.req("POST", "/v1/tokens", { as: { token }, body: { name: "second-admin", role: "admin" } }))
          .statusCode,
        201,
      );
      // Second start: an admin exists, nothing written, nothing created.
      rmSync(tokenFile);
      assert.equal((await ensureAdminToken(t2.db, undefined, capture().log, { tokenFile })).kind, "existing");
      assert.ok(!existsSync(tokenFile));
      assert.equal(await t2.db.apiToken.count({ where: { name: "initial-admin" } }), 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await t2.close();
    }
  });

  test("a token file that cannot be written creates no token and says what to set", async () => {
    const t2 = await startTestApp();
    try {
      await t2.db.apiToken.deleteMany({});
      const tokenFile = join(tmpdir(), `palisade-no-such-dir-${process.pid}`, "admin-token");
      await assert.rejects(ensureAdminToken(t2.db, undefined, capture().log, { tokenFile }), (err: Error) => {
        assert.match(err.message, /PALISADE_INITIAL_TOKEN_FILE/);
        assert.match(err.message, /ENOENT/);
        return true;
      });
      assert.equal(await t2.db.apiToken.count(), 0, "rolled back: no token nobody can read");
    } finally {
      await t2.close();
    }
  });

  test("replicas starting together create exactly one", async () => {
    const t2 = await startTestApp();
    try {
      await t2.db.apiToken.deleteMany({});
      const files = Array.from({ length: 4 }, (_, i) => join(tmpdir(), `palisade-race-${process.pid}-${i}`));
      const results = await Promise.all(
        files.map((tokenFile) => ensureAdminToken(t2.db, undefined, capture().log, { tokenFile })),
      );
      assert.equal(results.filter((r) => r.kind === "generated").length, 1);
      assert.equal(files.filter((f) => existsSync(f)).length, 1);
      for (const f of files) rmSync(f, { force: true });
      assert.equal(await t2.db.apiToken.count({ where: { role: "admin" } }), 1);
    } finally {
      await t2.close();
    }
  });

  test("PALISADE_ADMIN_TOKEN is stored hashed, once, and authenticates as admin", async () => {
    const secret = "env-provided-admin-token-1234567890";
    const { log } = capture();
    assert.deepEqual(await ensureAdminToken(t.db, secret, log, { tokenFile: "/nonexistent/unused" }), {
      kind: "env",
      created: true,
    });
    assert.deepEqual(await ensureAdminToken(t.db, secret, log, { tokenFile: "/nonexistent/unused" }), {
      kind: "env",
      created: false,
    });
    const rows = await t.db.apiToken.findMany({ where: { tokenHash: hashSecret(secret) } });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.role, "admin");
    assert.equal((await t.req("GET", "/v1/tokens", { as: { token: secret } })).statusCode, 200);
  });
});
