import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../../src/agent/config.ts";
import { Backoff } from "../../../src/agent/backoff.ts";
import { createLog, levelNumber } from "../../../src/runtime/log.ts";

describe("agent config", () => {
  it("reads flags, fills defaults, and lets flags win over env", () => {
    const c = loadConfig(["--server", "api.example:50051", "--state-dir", "/var/lib/palisade", "--name", "edge-1"], {
      PALISADE_SERVER: "other:1",
    });
    assert.equal(c.server, "api.example:50051");
    assert.equal(c.telemetryInterval, 10);
    assert.equal(c.driftRestore, true);
    assert.equal(c.logLevel, "info");
  });
  it("takes everything from env", () => {
    const c = loadConfig([], {
      PALISADE_SERVER: "[2001:db8::1]:443",
      PALISADE_STATE_DIR: "/s",
      PALISADE_TELEMETRY_INTERVAL: "1",
      PALISADE_DRIFT_RESTORE: "false",
      PALISADE_NETNS: "ns1",
    });
    assert.equal(c.server, "[2001:db8::1]:443");
    assert.equal(c.telemetryInterval, 1);
    assert.equal(c.driftRestore, false);
    assert.equal(c.netns, "ns1");
    assert.ok(c.name.length > 0, "name defaults to the hostname");
  });
  it("reports every problem with the flag that caused it", () => {
    assert.throws(
      () => loadConfig(["--server", "no-port", "--telemetry-interval", "0.5", "--log-level", "loud"], {}),
      (e: Error & { code?: string }) =>
        e.code === "invalid_config" &&
        /--server/.test(e.message) &&
        /--telemetry-interval/.test(e.message) &&
        /--state-dir/.test(e.message) &&
        /--log-level/.test(e.message),
    );
    assert.throws(
      () => loadConfig(["--bogus"], {}),
      (e: Error & { code?: string }) => e.code === "invalid_config",
    );
  });
  it("refuses the removed --nflog-groups: the groups come from the applied ruleset", () => {
    const removed = (e: Error & { code?: string }) =>
      e.code === "invalid_config" && /nflog-groups \(PALISADE_NFLOG_GROUPS\) was removed/.test(e.message);
    assert.throws(() => loadConfig(["--server", "a:1", "--state-dir", "/s", "--nflog-groups", "2"], {}), removed);
    assert.throws(() => loadConfig(["--server", "a:1", "--state-dir", "/s"], { PALISADE_NFLOG_GROUPS: "2" }), removed);
  });
});

describe("agent TLS upgrade secret", () => {
  const base = ["--server", "api.example:50051", "--state-dir", "/s", "--name", "edge-1"];
  it("comes from the environment or its file, never a flag", () => {
    assert.equal(loadConfig(base, { PALISADE_TLS_UPGRADE_SECRET: " s.ab \n" }).tlsUpgradeSecret, "s.ab");
    const dir = mkdtempSync(join(tmpdir(), "palisade-upgrade-secret-"));
    try {
      writeFileSync(join(dir, "secret"), "palupgrade_x.00\n", { mode: 0o600 });
      const file = join(dir, "secret");
      assert.equal(loadConfig(base, { PALISADE_TLS_UPGRADE_SECRET_FILE: file }).tlsUpgradeSecret, "palupgrade_x.00");
      // Spent and deleted: not an error.
      assert.equal(
        loadConfig(base, { PALISADE_TLS_UPGRADE_SECRET_FILE: join(dir, "gone") }).tlsUpgradeSecret,
        undefined,
      );
      assert.throws(
        () => loadConfig(base, { PALISADE_TLS_UPGRADE_SECRET: "a", PALISADE_TLS_UPGRADE_SECRET_FILE: file }),
        /either PALISADE_TLS_UPGRADE_SECRET or PALISADE_TLS_UPGRADE_SECRET_FILE/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => loadConfig([...base, "--tls-upgrade-secret", "x"], {}), /agent flags/);
    assert.equal(loadConfig(base, {}).tlsUpgradeSecret, undefined);
  });
});

describe("agent backoff", () => {
  it("grows exponentially to the cap with jitter in [cap/2, cap], and resets", () => {
    let r = 0;
    const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => r });
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [50, 100, 200, 400, 500]);
    r = 1;
    assert.equal(b.next(), 1000);
    b.reset();
    assert.equal(b.next(), 100);
  });
});

describe("agent log", () => {
  it("writes the server's pino lines: numeric level, time in ms, msg, the fields at the top level", () => {
    const raw: string[] = [];
    const l = createLog("info", { write: (s: string) => void raw.push(s) });
    l.debug("hidden");
    l.child({ host: "h1" }).warn({ n: 1, big: 2n ** 70n }, "drift");
    assert.equal(raw.length, 1);
    assert.ok(raw[0]!.endsWith("\n"));
    // A bigint is written whole (not rounded through a double).
    assert.match(raw[0]!, /"big":"?1180591620717411303424"?/);
    const line = JSON.parse(raw[0]!) as Record<string, unknown>;
    assert.equal(line.level, levelNumber("warn"));
    assert.equal(line.level, 40);
    assert.equal(line.msg, "drift");
    assert.equal(line.host, "h1");
    assert.equal(line.n, 1);
    assert.equal(typeof line.time, "number");
    assert.equal(line.pid, process.pid);
  });
});
