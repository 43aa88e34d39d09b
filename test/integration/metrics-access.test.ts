// GET /metrics behind an optional bearer token (PALISADE_METRICS_TOKEN), and the fleet
// snapshot it reads from PostgreSQL and Redis kept for PALISADE_METRICS_CACHE_SECONDS.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorOf, ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";
import { waitFor } from "../support/grpc-fleet.ts";

const METRICS_TOKEN = "metrics-scraper-secret-0123456789";

/** The never-connected host count, as one scrape of `t` shows it. */
async function neverConnected(t: TestApp, headers: Record<string, string> = {}): Promise<number> {
  const res = await t.app.inject({ method: "GET", url: "/metrics", headers });
  assert.equal(res.statusCode, 200, res.body);
  const line = res.body.split("\n").find((l) => l.startsWith('palisade_hosts{connection="never_connected"} '));
  assert.ok(line, "palisade_hosts is exported");
  return Number(line.split(" ").at(-1));
}

const addHost = (t: TestApp, name: string) => t.db.host.create({ data: { name } });

describe("metrics token", () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ rateLimitPerMinute: 4, metrics: { token: METRICS_TOKEN, cacheMs: 0 } });
  });
  after(async () => {
    await t?.close();
  });

  test("a scrape without the token, with a wrong one or with an API token gets 401; with it, the metrics", async () => {
    const scrape = (authorization: string | undefined, remoteAddress: string) =>
      t.app.inject({
        method: "GET",
        url: "/metrics",
        remoteAddress,
        headers: authorization === undefined ? {} : { authorization },
      });
    const none = await scrape(undefined, "192.0.2.20");
    assert.equal(none.statusCode, 401, none.body);
    assert.equal(errorOf(none).code, "unauthorized");
    assert.match(String(none.headers["www-authenticate"]), /^Bearer realm="palisade-metrics"$/);
    const wrong = await scrape(`Bearer ${METRICS_TOKEN}x`, "192.0.2.21");
    assert.equal(wrong.statusCode, 401);
    assert.match(String(wrong.headers["www-authenticate"]), /error="invalid_token"/);
    assert.equal(
      (await scrape(`Bearer ${ROLE_TOKENS.admin}`, "192.0.2.22")).statusCode,
      401,
      "API tokens are not metrics tokens",
    );
    const ok = await scrape(`Bearer ${METRICS_TOKEN}`, "192.0.2.23");
    assert.equal(ok.statusCode, 200, ok.body);
    assert.match(ok.body, /^palisade_hosts\{connection="connected"\} 0$/m);
    // The probes stay public.
    assert.equal((await t.app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
  });

  test("wrong metrics tokens count as failed authentications of the address (429 after the limit)", async () => {
    const from = (token: string) =>
      t.app.inject({
        method: "GET",
        url: "/metrics",
        remoteAddress: "192.0.2.30",
        headers: { authorization: `Bearer ${token}` },
      });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await from(`guess-${i}-0123456789abcdef`)).statusCode);
    assert.deepEqual(statuses, [401, 401, 401, 401, 429]);
    const res = await from(METRICS_TOKEN);
    assert.equal(res.statusCode, 429, "the right token too, until the window ends");
    assert.equal(errorOf(res).code, "rate_limited");
    assert.ok(Number(res.headers["retry-after"]) > 0);
  });

  test("the OpenAPI document says /metrics may take the metrics token", async () => {
    const doc = (await t.app.inject({ method: "GET", url: "/openapi.json" })).json() as {
      paths: Record<string, Record<string, { security: unknown[]; responses: Record<string, unknown> }>>;
      components: { securitySchemes: Record<string, unknown> };
    };
    assert.deepEqual(doc.paths["/metrics"]!.get!.security, [{}, { metricsToken: [] }]);
    assert.ok(doc.paths["/metrics"]!.get!.responses["401"]);
    assert.ok(doc.components.securitySchemes.metricsToken);
  });
});

describe("metrics snapshot cache", () => {
  let cached: TestApp;
  let short: TestApp;
  before(async () => {
    cached = await startTestApp({ metrics: { token: undefined, cacheMs: 3_600_000 } });
    short = await startTestApp({ metrics: { token: undefined, cacheMs: 200 } });
  });
  after(async () => {
    await cached?.close();
    await short?.close();
  });

  test("scrapes within the cache period reuse one snapshot (no new database reads)", async () => {
    assert.equal(await neverConnected(cached), 0);
    await addHost(cached, "cache-a");
    await addHost(cached, "cache-b");
    for (let i = 0; i < 3; i++)
      assert.equal(await neverConnected(cached), 0, "still the snapshot taken before the hosts were added");
    // Process metrics are not cached: the request counter moves every scrape.
    const count = async () => {
      const body = (await cached.app.inject({ method: "GET", url: "/metrics" })).body;
      return Number(
        /^palisade_http_requests_total\{method="GET",route="\/metrics",status="200"\} (\d+)$/m.exec(body)?.[1],
      );
    };
    const first = await count();
    assert.ok((await count()) > first);
  });

  test("after the cache period the next scrape reads the fleet again", async () => {
    assert.equal(await neverConnected(short), 0);
    await addHost(short, "short-a");
    await waitFor(async () => (await neverConnected(short)) === 1, 10_000, "a fresh snapshot after 200 ms", 50);
  });
});
