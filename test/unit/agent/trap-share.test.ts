// The agent's trap-hit reporter: only the sharing trap's events, deduplicated, rate-capped.
import assert from "node:assert/strict";
import { test } from "node:test";
import { policyFacts } from "../../../src/agent/render.ts";
import { TrapShareReporter } from "../../../src/agent/trap-share.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import type { LogEvent } from "../../../src/protocol/agent.ts";

const policy = (share: boolean) =>
  policyFacts(
    JSON.stringify({
      chains: { input: { hook: "input", policy: "accept", rules: [] } },
      protections: { portScanTrap: { ports: [139, 445], ...(share && { share: { list: "scanners" } }) } },
    }),
  ).trapShare;
const ev = (saddr: string, dport = 139, prefix = "Portscan:"): LogEvent => ({
  unixMs: "0",
  prefix,
  level: 0,
  mark: 0,
  iif: "",
  oif: "",
  saddr,
  daddr: "10.0.0.1",
  protocol: "tcp",
  sport: 40000,
  dport,
  length: 60,
});
const tick = () => new Promise((r) => setTimeout(r, 40));

test("reports only the sharing trap's hits, once per address", async () => {
  const sent: string[][] = [];
  const r = new TrapShareReporter((a) => (sent.push(a), true), memoryLog());
  r.onEvents([ev("198.51.100.1")]);
  await tick();
  assert.deepEqual(sent, [], "no policy: nothing shared");
  r.configure(policy(false));
  r.onEvents([ev("198.51.100.1")]);
  await tick();
  assert.deepEqual(sent, [], "a trap without share");
  r.configure(policy(true));
  assert.deepEqual(r.sharing, {
    list: "scanners",
    ttlSeconds: 3600,
    logPrefix: "Portscan:",
    ports: [139, 445],
    exempt: [],
  });
  r.onEvents([ev("198.51.100.1"), ev("198.51.100.1", 445), ev("198.51.100.2", 22), ev("198.51.100.3", 139, "Other:")]);
  r.onEvents([ev("198.51.100.4", 445)]);
  await tick();
  assert.deepEqual(sent, [["198.51.100.1", "198.51.100.4"]]);
  r.onEvents([ev("198.51.100.1")]);
  await tick();
  assert.equal(sent.length, 1, "reported within the dedupe window: not again");
  r.stop();
});

test("a flood is capped: at most the burst leaves, the rest is counted as dropped", async () => {
  const sent: string[] = [];
  const r = new TrapShareReporter((a) => (sent.push(...a), true), memoryLog(), {
    perSecond: 1,
    burst: 10,
    dedupeMs: 60_000,
    maxRecent: 100,
    maxPending: 1000,
    flushMs: 5,
  });
  r.configure(policy(true));
  r.onEvents(Array.from({ length: 500 }, (_, i) => ev(`10.9.${i >> 8}.${i & 255}`)));
  await tick();
  assert.equal(sent.length, 10);
  assert.ok(r.dropped >= 489, String(r.dropped));
  r.stop();
});

test("a failed read of the trap sharing keeps the sharing held and is tried again; a newer read supersedes it", async () => {
  // The retry timers are unref'd: an interval keeps the loop alive meanwhile.
  const alive = setInterval(() => undefined, 1000);
  try {
    const log = memoryLog();
    const r = new TrapShareReporter(() => true, log, undefined, { firstMs: 1, maxMs: 2 });
    const shared = policy(true);
    assert.ok(shared);
    let calls = 0;
    let answered: () => void = () => {};
    const done = new Promise<void>((res) => (answered = res));
    // At start: the worker fails twice, then answers.
    assert.equal(
      await r.refresh(async () => {
        if (++calls <= 2) throw new Error("render worker stopped: exit 1");
        setImmediate(answered);
        return shared;
      }),
      false,
    );
    assert.equal(r.sharing, undefined);
    await done;
    assert.equal(calls, 3);
    assert.deepEqual(r.sharing, shared);
    const failures = log.lines.filter((l) => /cannot read the policy's trap sharing/.test(String(l.msg)));
    assert.deepEqual(
      failures.map((l) => l.retryInMs),
      [1, 2],
    );
    // A confirmed policy whose facts cannot be read: the sharing held stays, not none.
    let stale = 0;
    await r.refresh(async () => {
      stale++;
      throw new Error("render worker stopped: exit 1");
    });
    assert.deepEqual(r.sharing, shared, "kept on failure");
    // The next confirmed policy (no sharing) is read: the failing retry stops.
    assert.equal(await r.refresh(async () => policy(false)), true);
    assert.equal(r.sharing, undefined);
    const n = stale;
    await tick();
    assert.equal(stale, n, "the superseded retry stopped");
    r.stop();
  } finally {
    clearInterval(alive);
  }
});
