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
  });

  test("values are read and coerced; empty counts as unset", () => {
    const c = loadConfig({ PORT: "9000", GRPC_PORT: "9001", HOST: "127.0.0.1", PALISADE_ADMIN_TOKEN: "a-long-enough-admin-token", REDIS_URL: "" });
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
        for (const name of ["PORT", "DATABASE_URL", "PALISADE_ADMIN_TOKEN"]) assert.match(err.message, new RegExp(`^  ${name}: `, "m"));
        return true;
      },
    );
    assert.throws(() => loadConfig({ PORT: "70000" }), /PORT/);
    assert.throws(() => loadConfig({ SSE_STREAMS_PER_TOKEN: "0" }), /SSE_STREAMS_PER_TOKEN/);
  });

  test("palisade server with a bad variable exits 1 with one clear message in the CLI's error format", () => {
    const r = spawnSync(new URL("../../bin/palisade", import.meta.url).pathname, ["server"], { env: { ...process.env, PORT: "not-a-port" }, encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^error: invalid_config: invalid configuration:\n {2}PORT: /);
  });
});
