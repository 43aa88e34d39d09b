import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../../src/agent/config.ts";
import { Backoff } from "../../../src/agent/backoff.ts";
import { memoryLogger } from "../../../src/agent/log.ts";

describe("agent config", () => {
  it("reads flags, fills defaults, and lets flags win over env", () => {
    const c = loadConfig(["--server", "api.example:50051", "--state-dir", "/var/lib/palisade", "--name", "edge-1"], { PALISADE_SERVER: "other:1" });
    assert.equal(c.server, "api.example:50051");
    assert.equal(c.telemetryInterval, 10);
    assert.equal(c.driftRestore, true);
    assert.equal(c.logLevel, "info");
  });
  it("takes everything from env", () => {
    const c = loadConfig([], { PALISADE_SERVER: "[2001:db8::1]:443", PALISADE_STATE_DIR: "/s", PALISADE_TELEMETRY_INTERVAL: "1", PALISADE_DRIFT_RESTORE: "false", PALISADE_NETNS: "ns1" });
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
        e.code === "invalid_config" && /--server/.test(e.message) && /--telemetry-interval/.test(e.message) && /--state-dir/.test(e.message) && /--log-level/.test(e.message),
    );
    assert.throws(() => loadConfig(["--bogus"], {}), (e: Error & { code?: string }) => e.code === "invalid_config");
  });
  it("refuses the removed --nflog-groups: the groups come from the applied ruleset", () => {
    const removed = (e: Error & { code?: string }) => e.code === "invalid_config" && /nflog-groups \(PALISADE_NFLOG_GROUPS\) was removed/.test(e.message);
    assert.throws(() => loadConfig(["--server", "a:1", "--state-dir", "/s", "--nflog-groups", "2"], {}), removed);
    assert.throws(() => loadConfig(["--server", "a:1", "--state-dir", "/s"], { PALISADE_NFLOG_GROUPS: "2" }), removed);
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
  it("writes one JSON object per line with time, level, msg, fields", () => {
    const l = memoryLogger("info");
    l.debug("hidden");
    l.child({ host: "h1" }).warn("drift", { n: 1, big: 2n ** 70n });
    assert.equal(l.lines.length, 1);
    const line = l.lines[0]!;
    assert.equal(line.level, "warn");
    assert.equal(line.msg, "drift");
    assert.deepEqual(line.fields, { host: "h1", n: 1, big: "1180591620717411303424" });
    assert.ok(!Number.isNaN(Date.parse(String(line.time))));
  });
});
