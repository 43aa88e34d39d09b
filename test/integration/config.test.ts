// Configuration from the environment (README, "Configuration"): defaults, and a bad value stops the
// process with a message that names the variable.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/api/config.ts";

describe("config", () => {
  test("defaults are the documented ones (README, Configuration)", () => {
    const c = loadConfig({});
    assert.equal(c.databaseUrl, "postgresql://postgres@127.0.0.1:5432/palisade");
    assert.equal(c.redisUrl, "redis://127.0.0.1:6379");
    assert.equal(c.host, "0.0.0.0");
    assert.equal(c.port, 8080);
    assert.equal(c.grpcPort, 50051);
    assert.equal(c.adminToken, undefined);
    assert.equal(c.initialTokenFile, "palisade-initial-admin-token");
    assert.equal(c.sseStreamsPerToken, 10);
    assert.deepEqual(c.metrics, { token: undefined, cacheMs: 5_000 });
  });

  test("values are read and coerced; empty counts as unset", () => {
    const c = loadConfig({
      PORT: "9000",
      GRPC_PORT: "9001",
      HOST: "127.0.0.1",
      PALISADE_ADMIN_TOKEN: "a-long-enough-admin-token",
      REDIS_URL: "",
    });
    assert.equal(c.port, 9000);
    assert.equal(c.grpcPort, 9001);
    assert.equal(c.host, "127.0.0.1");
    assert.equal(c.adminToken, "a-long-enough-admin-token");
    assert.equal(c.redisUrl, "redis://127.0.0.1:6379");
  });

  test("each bad variable is named", () => {
    assert.throws(
      () => loadConfig({ PORT: "eighty", DATABASE_URL: "mysql://x/y", PALISADE_ADMIN_TOKEN: "short" }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        for (const name of ["PORT", "DATABASE_URL", "PALISADE_ADMIN_TOKEN"])
          assert.match(err.message, new RegExp(`^  ${name}: `, "m"));
        return true;
      },
    );
    assert.throws(() => loadConfig({ PORT: "70000" }), /PORT/);
    assert.throws(() => loadConfig({ SSE_STREAMS_PER_TOKEN: "0" }), /SSE_STREAMS_PER_TOKEN/);
    // Queue and retention settings are read at start too, not at the first job or query.
    assert.throws(
      () => loadConfig({ PALISADE_QUEUE_PREFIX: "bad prefix" }),
      (e: Error) => e instanceof ConfigError && /PALISADE_QUEUE_PREFIX/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ PALISADE_DEPLOY_LOCK_MS: "10" }),
      (e: Error) => e instanceof ConfigError && /PALISADE_DEPLOY_LOCK_MS/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ PALISADE_RETENTION_RAW_DAYS: "many" }),
      (e: Error) => e instanceof ConfigError && /PALISADE_RETENTION_RAW_DAYS/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ PALISADE_RETENTION_MONTH_MONTHS: "25" }),
      (e: Error) => e instanceof ConfigError && /do not outlive/.test(e.message),
    );
    // The metrics token and cache are checked at start too.
    assert.throws(
      () => loadConfig({ PALISADE_METRICS_TOKEN: "short" }),
      (e: Error) => e instanceof ConfigError && /PALISADE_METRICS_TOKEN: must be at least 16/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ PALISADE_METRICS_TOKEN: "has a space in it, 0123456789" }),
      (e: Error) => e instanceof ConfigError && /PALISADE_METRICS_TOKEN/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ PALISADE_METRICS_CACHE_SECONDS: "-1" }),
      (e: Error) => e instanceof ConfigError && /PALISADE_METRICS_CACHE_SECONDS/.test(e.message),
    );
    assert.deepEqual(
      loadConfig({ PALISADE_METRICS_TOKEN: "scraper-secret-0123456789", PALISADE_METRICS_CACHE_SECONDS: "0.5" })
        .metrics,
      { token: "scraper-secret-0123456789", cacheMs: 500 },
    );
    // Trusted proxies: addresses or CIDRs only, checked at start.
    assert.throws(
      () => loadConfig({ PALISADE_TRUST_PROXY: "10.0.0.1, proxy.example" }),
      (e: Error) => e instanceof ConfigError && /PALISADE_TRUST_PROXY.*IP address or CIDR/.test(e.message),
    );
    assert.deepEqual(loadConfig({ PALISADE_TRUST_PROXY: "10.0.0.1, 192.0.2.0/24,::1" }).trustProxy, [
      "10.0.0.1",
      "192.0.2.0/24",
      "::1",
    ]);
    assert.deepEqual(loadConfig({}).trustProxy, []);
    const q = loadConfig({ PALISADE_QUEUE_PREFIX: "site-b:bull", PALISADE_RETENTION_RAW_DAYS: "5" });
    assert.deepEqual([q.queue, q.retention.rawDays], [{ prefix: "site-b:bull", lockMs: 15_000 }, 5]);
  });

  test("palisade server refuses to start with TLS on and no usable PALISADE_SECRET_KEY", () => {
    for (const key of ["", "too-short"]) {
      const env = {
        ...process.env,
        PALISADE_SECRET_KEY: key,
        PALISADE_SECRET_KEY_FILE: "",
        PALISADE_GRPC_PLAINTEXT: "",
      };
      const r = spawnSync(new URL("../../bin/palisade", import.meta.url).pathname, ["server", "--no-migrate"], {
        env,
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /PALISADE_SECRET_KEY/);
      assert.match(r.stderr, /must be at least 32|not set/);
    }
  });

  test("TLS settings: on by default, the enrollment port follows GRPC_PORT, plaintext only when asked", () => {
    const c = loadConfig({
      GRPC_PORT: "6000",
      PALISADE_SECRET_KEY: "k".repeat(40),
      PALISADE_TLS_SERVER_NAMES: "api.example.net, 10.0.0.1",
    });
    assert.deepEqual(c.agentTls, {
      mode: "mtls",
      secretKey: "k".repeat(40),
      enrollPort: 6001,
      serverNames: ["api.example.net", "10.0.0.1"],
      clientCertTtlSeconds: 30 * 86_400,
    });
    assert.deepEqual(loadConfig({ PALISADE_GRPC_PLAINTEXT: "1" }).agentTls, { mode: "plaintext" });
  });

  test("palisade server with a bad variable exits 1 with one clear message in the CLI's error format", () => {
    const r = spawnSync(new URL("../../bin/palisade", import.meta.url).pathname, ["server"], {
      env: { ...process.env, PORT: "not-a-port" },
      encoding: "utf8",
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^error: invalid_config: invalid configuration:\n {2}PORT: /);
  });
});
