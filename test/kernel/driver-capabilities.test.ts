// Capability detection must say what the kernel says. Each expectation below is what
// `nft -c` answers for an independently written ruleset in the same namespace, never
// a hard-coded value (on these machines: no queue, no flowtable).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createLab } from "../support/netns.ts";
import { detectCapabilities, listTables, PROBES, type Capabilities } from "../../src/engine/driver/index.ts";

const lab = createLab();
let ns = "";
let caps: Capabilities;

async function kernelAccepts(text: string): Promise<boolean> {
  const r = await lab.nft(ns, ["-c", "-f", "-"], text, { allowFailure: true });
  return r.code === 0;
}

before(async () => {
  ns = await lab.addNamespace();
  caps = await detectCapabilities({ netns: ns });
});
after(() => lab.cleanup());

test("versions come from nft and the running kernel", async () => {
  const v = (await lab.nft(ns, ["--version"])).stdout;
  assert.ok(caps.nftVersion && v.includes(`v${caps.nftVersion}`), `${caps.nftVersion} vs ${v}`);
  assert.equal(caps.kernelRelease, readFileSync("/proc/sys/kernel/osrelease", "utf8").trim());
  assert.equal(typeof caps.ipv6, "boolean");
});

test("queue (NFQUEUE) is reported as the kernel answers it", async () => {
  const ok = await kernelAccepts(
    "table inet t {\nchain fw { type filter hook forward priority 0 ; meta l4proto udp queue num 3 ; }\n}\n",
  );
  assert.equal(caps.features.queue, ok);
  if (!ok) assert.match(caps.reasons.queue ?? "", /No such file or directory/);
});

test("flowtables are reported as the kernel answers them", async () => {
  const ok = await kernelAccepts("table ip t {\nflowtable ft { hook ingress priority 10 ; devices = { lo } ; }\n}\n");
  assert.equal(caps.features.flowtable, ok);
});

test("the features Palisade's compiler relies on agree with independent probes", async () => {
  const independent: Record<string, string> = {
    fib: "table inet t {\nchain p { type filter hook prerouting priority raw ; fib saddr . iif oif missing counter drop ; }\n}\n",
    set_counters:
      "table inet t {\nset a { type ipv4_addr ; flags dynamic ; counter ; }\nchain i { type filter hook input priority 0 ; update @a { ip saddr } ; }\n}\n",
    named_quota:
      'table inet t {\nquota q { until 5 mbytes }\nchain i { type filter hook input priority 0 ; quota name "q" accept ; }\n}\n',
    nflog: "table inet t {\nchain i { type filter hook input priority 0 ; log group 2 ; }\n}\n",
    synproxy:
      "table inet t {\nchain i { type filter hook input priority 0 ; tcp dport 443 synproxy mss 1400 wscale 5 ; }\n}\n",
    notrack: "table inet t {\nchain r { type filter hook output priority raw ; notrack ; }\n}\n",
    osf: 'table inet t {\nchain i { type filter hook input priority 0 ; osf ttl loose name "Linux" ; }\n}\n',
    tproxy:
      "table ip t {\nchain p { type filter hook prerouting priority mangle ; meta l4proto tcp tproxy to :8080 ; }\n}\n",
  };
  for (const [feature, text] of Object.entries(independent)) {
    assert.equal(caps.features[feature as keyof typeof PROBES], await kernelAccepts(text), feature);
  }
});

test("every feature is reported, reasons only for unsupported ones, and nothing is left installed", async () => {
  assert.deepEqual(Object.keys(caps.features).sort(), Object.keys(PROBES).sort());
  for (const [f, ok] of Object.entries(caps.features)) assert.equal(f in caps.reasons, !ok, f);
  assert.deepEqual(await listTables({ netns: ns }), []);
});
