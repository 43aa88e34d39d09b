// The policy failsafe the agent renders: the API's addresses and port together, never the
// port alone. A name that does not resolve falls back to the addresses it last resolved to
// (state dir) and the live stream's address; with none, a policy needing the rule is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { failsafeContext } from "../../../src/agent/desired.ts";
import { PolicyWorker } from "../../../src/agent/policy-worker.ts";
import { applyOnce } from "../../support/apply-once.ts";
import { renderDesired } from "../../../src/agent/render.ts";
import { StateDir } from "../../../src/agent/state.ts";
import { levelNumber, memoryLog } from "../../../src/runtime/log.ts";

const policy = JSON.stringify({
  chains: {
    in: { hook: "input", policy: "drop", rules: [] },
    pre: { table: "raw", hook: "prerouting", rules: [] },
    out: { hook: "output", rules: [] },
  },
});

const failsafeLines = (text: string) => text.split("\n").filter((l) => l.includes("palisade failsafe"));

test("an API given by address: the failsafe matches that address and the port in every chain", async () => {
  const fs = await failsafeContext("192.0.2.9:8443", "policy");
  assert.deepEqual(fs, { apiAddresses: ["192.0.2.9"], apiPort: 8443 });
  const r = renderDesired(policy, fs);
  assert.ok(r.ok);
  const lines = failsafeLines(r.text);
  assert.equal(lines.length, 3);
  for (const l of lines) assert.match(l, /ip [sd]addr 192\.0\.2\.9 tcp [sd]port 8443 /);
});

test("a name resolving to several addresses: one rule per family naming all of them", async () => {
  // `localhost` resolves (from /etc/hosts) without a DNS server.
  const fs = await failsafeContext("localhost:50051", "policy");
  assert.ok(fs.apiAddresses.includes("127.0.0.1"));
  const resolved = renderDesired(policy, fs);
  assert.ok(resolved.ok);
  const inputOf = (text: string) => failsafeLines(text).filter((l) => l.startsWith("add rule inet palisade in "));
  const seen = inputOf(resolved.text).join("\n");
  // Every address the name resolved to (127.0.0.1, and ::1 where /etc/hosts maps it) is matched.
  for (const a of fs.apiAddresses) assert.ok(seen.includes(a), `${a} missing from the failsafe: ${seen}`);
  assert.match(seen, /ip saddr 127\.0\.0\.1 tcp sport 50051 /);
  if (fs.apiAddresses.includes("::1")) assert.match(seen, /ip6 saddr ::1 tcp sport 50051 /);
  const r = renderDesired(policy, { apiAddresses: ["192.0.2.2", "2001:db8::1", "192.0.2.1"], apiPort: 50051 });
  assert.ok(r.ok);
  assert.deepEqual(
    inputOf(r.text).map((l) => l.replace(/ comment .*/, "")),
    [
      "add rule inet palisade in ip saddr { 192.0.2.1, 192.0.2.2 } tcp sport 50051 ct state established,related accept",
      "add rule inet palisade in ip6 saddr 2001:db8::1 tcp sport 50051 ct state established,related accept",
    ],
  );
});

const tempState = async () => {
  const dir = await mkdtemp(join(tmpdir(), "palisade-desired-"));
  return { state: await StateDir.open(dir), done: () => rm(dir, { recursive: true, force: true }) };
};

test("an API name that never resolved: no address (never a port-only rule), and the render is refused", async () => {
  const { state, done } = await tempState();
  try {
    const log = memoryLog("warn");
    const fs = await failsafeContext("no-such-host.invalid:50051", "policy", log, { state });
    assert.deepEqual(fs, { apiAddresses: [], apiPort: 50051, unresolved: "no-such-host.invalid" });
    assert.ok(log.lines.some((l) => l.level === levelNumber("warn") && /never did on this host/.test(String(l.msg))));
    const r = renderDesired(policy, fs);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.code === "failsafe_unresolved");
    assert.match(r.error, /no-such-host\.invalid .*Fix name resolution.*IP:PORT/);
    // Nothing for the failsafe to keep open: these render as before.
    const off = JSON.stringify({ ...JSON.parse(policy), failsafe: { enabled: false } });
    assert.ok(renderDesired(off, fs).ok);
    const forwardOnly = JSON.stringify({ chains: { fwd: { hook: "forward", policy: "drop", rules: [] } } });
    assert.ok(renderDesired(forwardOnly, fs).ok);
  } finally {
    await done();
  }
});

test("a lookup that fails uses the addresses the name last resolved to (warn line naming them and when)", async () => {
  const { state, done } = await tempState();
  try {
    // A successful lookup is remembered, mode 0600.
    await failsafeContext("localhost:50051", "policy", undefined, { state });
    const kept = await state.readResolvedApi();
    assert.equal(kept?.host, "localhost");
    assert.ok(kept?.addresses.includes("127.0.0.1"));
    assert.equal((await stat(state.path("api-addresses.json"))).mode & 0o777, 0o600);
    // The same file for a name that stopped resolving.
    await state.writeResolvedApi({
      host: "no-such-host.invalid",
      addresses: ["192.0.2.5"],
      resolvedAt: "2026-12-01T10:00:00.000Z",
    });
    const log = memoryLog("warn");
    const fs = await failsafeContext("no-such-host.invalid:50051", "ban table", log, { state });
    assert.deepEqual(fs, { apiAddresses: ["192.0.2.5"], apiPort: 50051 });
    const warn = log.lines.find((l) => l.level === levelNumber("warn"));
    assert.match(
      String(warn?.msg),
      /ban table's failsafe uses the addresses it last resolved to \(at 2026-12-01T10:00:00\.000Z\)/,
    );
    assert.deepEqual(warn?.addresses, ["192.0.2.5"]);
    const r = renderDesired(
      policy,
      await failsafeContext("no-such-host.invalid:50051", "policy", undefined, { state }),
    );
    assert.ok(r.ok);
    assert.match(failsafeLines(r.text).join("\n"), /ip saddr 192\.0\.2\.5 tcp sport 50051 /);
    // Remembered for another --server: not used.
    const other = await failsafeContext("other-host.invalid:50051", "policy", undefined, { state });
    assert.deepEqual(other.apiAddresses, []);
  } finally {
    await done();
  }
});

test("the live stream's remote address joins the failsafe (IPv4-mapped as IPv4), also when the name fails", async () => {
  const peer = () => "[::ffff:192.0.2.7]:50051";
  const failing = await failsafeContext("no-such-host.invalid:50051", "policy", memoryLog("error"), { peer });
  assert.deepEqual(failing, { apiAddresses: ["192.0.2.7"], apiPort: 50051 });
  const named = await failsafeContext("localhost:50051", "policy", undefined, { peer: () => "[2001:db8::9]:50051" });
  assert.ok(named.apiAddresses.includes("127.0.0.1") && named.apiAddresses.includes("2001:db8::9"));
  const unknown = await failsafeContext("192.0.2.9:8443", "policy", undefined, { peer: () => undefined });
  assert.deepEqual(unknown.apiAddresses, ["192.0.2.9"]);
});

test("the agent reports the apply FAILED (failsafe_unresolved) and leaves the kernel alone", async () => {
  const { state, done } = await tempState();
  // The agent's own path: the render runs in its worker thread.
  const worker = new PolicyWorker();
  try {
    const log = memoryLog("error");
    const { results, kernel } = await applyOnce(state, policy, {
      failsafe: () => failsafeContext("no-such-host.invalid:50051", "policy", log, { state }),
      render: (json, failsafe) => worker.render(json, failsafe),
    });
    assert.deepEqual(
      results.map((r) => r.status),
      ["APPLY_STATUS_FAILED"],
    );
    assert.match(results[0]!.error, /^failsafe_unresolved: the API name no-such-host\.invalid does not resolve/);
    assert.deepEqual(await kernel.listTables(), []);
    assert.equal(await state.readPending(), undefined);
  } finally {
    await worker.close();
    await done();
  }
});
