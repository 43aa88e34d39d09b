// The policy failsafe the agent renders: the API's addresses and port together, never the
// port alone; a name that does not resolve gives no failsafe rule and a warn line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { failsafeContext, renderDesired } from "../../../src/agent/desired.ts";
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
  assert.ok(fs.apiAddresses.length >= 1);
  const r = renderDesired(policy, { apiAddresses: ["192.0.2.2", "2001:db8::1", "192.0.2.1"], apiPort: 50051 });
  assert.ok(r.ok);
  const input = failsafeLines(r.text).filter((l) => l.startsWith("add rule inet palisade in "));
  assert.deepEqual(
    input.map((l) => l.replace(/ comment .*/, "")),
    [
      "add rule inet palisade in ip saddr { 192.0.2.1, 192.0.2.2 } tcp sport 50051 ct state { established, related } accept",
      "add rule inet palisade in ip6 saddr 2001:db8::1 tcp sport 50051 ct state { established, related } accept",
    ],
  );
});

test("an API name that does not resolve: no failsafe rule (never a port-only one), and a warn line", async () => {
  const log = memoryLog("warn");
  const fs = await failsafeContext("no-such-host.invalid:50051", "policy", log);
  assert.deepEqual(fs, { apiAddresses: [], apiPort: 50051 });
  assert.ok(
    log.lines.some(
      (l) => l.level === levelNumber("warn") && /policy is loaded without its failsafe/.test(String(l.msg)),
    ),
  );
  const r = renderDesired(policy, fs);
  assert.ok(r.ok);
  assert.deepEqual(failsafeLines(r.text), []);
  assert.doesNotMatch(r.text, /sport 50051/);
});
