import { test } from "node:test";
import assert from "node:assert/strict";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { expandPolicy } from "../../../src/engine/expand/index.ts";
import { canonicalJson } from "../../../src/engine/checksum.ts";
import { BOGON_SOURCES } from "../../../src/engine/expand/anti-spoofing.ts";
import type { Policy, Rule } from "../../../src/engine/policy/index.ts";

function expand(doc: unknown): Policy {
  const r = validatePolicy(doc);
  assert.deepEqual(r.errors, []);
  const e = expandPolicy(r.policy!);
  const again = validatePolicy(e);
  assert.deepEqual(again.errors, [], "the expanded policy validates");
  return e;
}
const rules = (p: Policy, chain: string): Rule[] => p.chains[chain]?.rules ?? [];
const all = {
  antiSpoofing: { interface: "eth0" },
  icmpFlood: {},
  bogusPackets: {},
  rstFlood: {},
  synFlood: {},
  portScanTrap: {},
  portKnock: [{ name: "ssh", knockPorts: [1000, 2000, 3000], port: 22 }],
};
const userInput = {
  input: {
    hook: "input",
    policy: "drop",
    rules: [{ match: { ctState: ["established", "related"] }, action: "accept" }],
  },
};

test("the jump to protect_input is the first rule of the user's input chain; no protections remain", () => {
  const e = expand({ chains: userInput, protections: { icmpFlood: {} } });
  assert.deepEqual(rules(e, "input")[0]!.action, { type: "jump", chain: "protect_input" });
  assert.equal(rules(e, "input").length, 2);
  assert.deepEqual(e.protections, {});
  assert.equal(e.chains.protect_input!.table, "filter");
});

test("a base chain is created when the user has none at that hook", () => {
  const e = expand({ protections: { bogusPackets: {} } });
  for (const hook of ["input", "forward", "output"] as const) {
    const base = e.chains[`protect_${hook}_base`]!;
    assert.equal(base.hook, hook);
    assert.deepEqual(base.rules[0]!.action, { type: "jump", chain: `protect_${hook}` });
  }
});

test("antiSpoofing: bogon sources, broadcast/multicast destinations, reverse path, in raw prerouting", () => {
  const e = expand({ protections: { antiSpoofing: { interface: "eth0" } } });
  const r = rules(e, "protect_prerouting");
  assert.equal(e.chains.protect_prerouting!.table, "raw");
  assert.deepEqual(
    r.map((x) => [x.match, x.action]),
    [
      [{ iif: "eth0", saddr: BOGON_SOURCES }, "drop"],
      [{ family: "ipv4", iif: "eth0", daddrType: ["broadcast", "multicast"] }, "drop"],
      [{ iif: "eth0", rpfilter: "fail" }, "drop"],
    ],
  );
  assert.deepEqual(BOGON_SOURCES, [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "0.0.0.0/8",
  ]);
  assert.ok(r.every((x) => x.comment?.startsWith("preset antiSpoofing: ")));
  const off = expand({
    protections: { antiSpoofing: { interface: "eth0", reversePath: false, dropBroadcastDestinations: false } },
  });
  assert.equal(rules(off, "protect_prerouting").length, 1);
});

test("icmpFlood: drop mask/timestamp requests, drop ICMP over the rate", () => {
  const r = rules(expand({ protections: { icmpFlood: {} } }), "protect_input");
  assert.deepEqual(
    r.map((x) => [x.match, x.action]),
    [
      [{ protocol: "icmp", icmpType: ["address-mask-request", "timestamp-request"] }, "drop"],
      [{ protocol: "icmp", limit: { rate: "1/second", burst: 5, over: true } }, "drop"],
    ],
  );
});

test("bogusPackets: INVALID in input/forward/output, SYN+FIN and SYN+RST", () => {
  const e = expand({ protections: { bogusPackets: {} } });
  for (const c of ["protect_input", "protect_output"])
    assert.deepEqual(rules(e, c)[0]!.match, { ctState: ["invalid"] });
  // forward: ESTABLISHED packets return first (none of these rules can match them), then the same rules.
  assert.deepEqual(
    rules(e, "protect_forward").map((x) => x.match),
    [{ ctState: ["established"] }, ...rules(e, "protect_input").map((x) => x.match)],
  );
  const flags = rules(e, "protect_input")
    .slice(1)
    .map((x) => x.match?.tcpFlags);
  assert.deepEqual(flags, [
    { mask: ["syn", "fin"], compare: ["syn", "fin"] },
    { mask: ["syn", "rst"], compare: ["syn", "rst"] },
  ]);
  assert.equal(
    expandPolicy(validatePolicy({ protections: { bogusPackets: { enabled: false } } }).policy!).chains.protect_input,
    undefined,
  );
});

test("rstFlood: RST over 2/second burst 2 dropped", () => {
  const r = rules(expand({ protections: { rstFlood: {} } }), "protect_input");
  assert.deepEqual(
    r.map((x) => [x.match, x.action]),
    [
      [
        {
          protocol: "tcp",
          tcpFlags: { mask: ["rst"], compare: ["rst"] },
          limit: { rate: "2/second", burst: 2, over: true },
        },
        "drop",
      ],
    ],
  );
});

test("synFlood: exactly the seed's recent --set + --update --seconds S --hitcount N+1 on new SYNs", () => {
  const e = expand({ protections: { synFlood: { rate: "30/second" } } });
  const [set, upd] = rules(e, "protect_input");
  const syn = { protocol: "tcp", ctState: ["new"], tcpFlags: { mask: ["fin", "syn", "rst", "ack"], compare: ["syn"] } };
  assert.deepEqual(set!.match, { ...syn, recent: { name: "protect_synflood", mode: "set", side: "source" } });
  assert.deepEqual(set!.action, { type: "counter", name: "protect_synflood" });
  assert.deepEqual(upd!.match, {
    ...syn,
    recent: { name: "protect_synflood", mode: "update", seconds: 1, hitcount: 31, side: "source" },
  });
  assert.equal(upd!.action, "drop");
  assert.ok(e.counters.protect_synflood);
  const perMinute = rules(expand({ protections: { synFlood: { rate: "100/minute" } } }), "protect_input")[1]!;
  assert.deepEqual([perMinute.match?.recent?.seconds, perMinute.match?.recent?.hitcount], [60, 101]);
});

test("synFlood with a burst: per-source token bucket (meter) over the rate", () => {
  const [r] = rules(expand({ protections: { synFlood: { rate: "30/second", burst: 30 } } }), "protect_input");
  assert.equal(r!.action, "drop");
  assert.deepEqual(r!.match?.ctState, ["new"]);
  assert.equal(r!.match?.meter?.key, "saddr");
  assert.equal(r!.match?.meter?.rate, "30/second");
  assert.equal(r!.match?.meter?.burst, 30);
  assert.equal(r!.match?.meter?.over, true);
});

test("portScanTrap: ban check first, then log+ban and drop the probe, in input and forward", () => {
  const e = expand({ protections: { portScanTrap: { ports: [139, 445], banSeconds: 3600 }, icmpFlood: {} } });
  for (const c of ["protect_input", "protect_forward"]) {
    const r = rules(e, c);
    assert.deepEqual(r[0]!.match, {
      recent: { name: "protect_portscan", mode: "rcheck", seconds: 3600, side: "source" },
    });
    assert.equal(r[0]!.action, "drop");
    const probe = r.findIndex((x) => x.match?.recent?.mode === "set");
    assert.deepEqual(r[probe]!.action, { type: "log", prefix: "Portscan:" });
    assert.deepEqual(r[probe]!.match?.dport, [139, 445]);
    assert.deepEqual(r[probe + 1]!.match, { protocol: "tcp", dport: [139, 445] });
    assert.equal(r[probe + 1]!.action, "drop");
  }
  const noFwd = expand({ protections: { portScanTrap: { forward: false } } });
  assert.equal(noFwd.chains.protect_forward, undefined);
});

test("portKnock: step lists, open list, strict reset", () => {
  const e = expand({
    chains: userInput,
    protections: {
      portKnock: [{ name: "ssh", knockPorts: [1000, 2000], port: 22, knockTimeoutSeconds: 5, openSeconds: 30 }],
    },
  });
  const r = rules(e, "protect_input");
  assert.deepEqual(r[0]!.match, {
    protocol: "tcp",
    dport: 22,
    recent: { name: "pk_ssh_open", mode: "rcheck", seconds: 30, side: "source" },
  });
  assert.equal(r[0]!.action, "accept");
  assert.deepEqual(r[1]!.match, { protocol: "tcp", dport: 22 });
  assert.equal(r[1]!.action, "drop");
  assert.deepEqual(r[2]!.action, { type: "goto", chain: "pk_ssh_step1" });
  assert.deepEqual(r[3]!.match?.recent, { name: "pk_ssh_1", mode: "rcheck", seconds: 5, side: "source" });
  assert.deepEqual(r[3]!.action, { type: "goto", chain: "pk_ssh_step2" });
  assert.deepEqual(r[4]!.action, { type: "goto", chain: "pk_ssh_reset" });
  assert.deepEqual(rules(e, "pk_ssh_step1")[0]!.match?.recent, { name: "pk_ssh_1", mode: "set", side: "source" });
  assert.deepEqual(rules(e, "pk_ssh_step2")[0]!.match?.recent, { name: "pk_ssh_open", mode: "set", side: "source" });
  assert.deepEqual(
    rules(e, "pk_ssh_reset").map((x) => x.match?.recent?.mode ?? x.action),
    ["remove", "drop"],
  );
  assert.ok(e.counters.pk_ssh_resets);
});

test("all presets together expand to a valid, deterministic policy", () => {
  const doc = { chains: userInput, protections: all };
  const a = expand(doc);
  const b = expand(JSON.parse(JSON.stringify(doc)));
  assert.equal(canonicalJson(a), canonicalJson(b));
  assert.equal(JSON.stringify(a), JSON.stringify(b));
  // Expanding an expanded policy changes nothing (no presets left).
  assert.equal(canonicalJson(expandPolicy(a)), canonicalJson(a));
  // Every generated rule names its preset.
  for (const [name, chain] of Object.entries(a.chains)) {
    if (name === "input") continue;
    for (const r of chain.rules) assert.match(r.comment ?? "", /^preset /);
  }
});

test("preset names are reserved; knock sequences are checked", () => {
  const codes = (doc: unknown) => validatePolicy(doc).errors.map((d) => `${d.code} ${d.path}`);
  assert.deepEqual(codes({ chains: { protect_input: { rules: [] } }, protections: { icmpFlood: {} } }), [
    "preset_name_conflict /chains/protect_input",
  ]);
  assert.deepEqual(codes({ sets: { protect_portscan: { type: "ipv4_addr" } }, protections: { portScanTrap: {} } }), [
    "preset_name_conflict /sets/protect_portscan",
  ]);
  assert.deepEqual(codes({ protections: { portKnock: [{ name: "a", knockPorts: [1, 1], port: 22 }] } }), [
    "port_knock_repeated_port /protections/portKnock/0/knockPorts/1",
  ]);
  assert.deepEqual(codes({ protections: { portKnock: [{ name: "a", knockPorts: [1, 22], port: 22 }] } }), [
    "port_knock_port_in_sequence /protections/portKnock/0/knockPorts/1",
  ]);
  assert.deepEqual(
    codes({
      protections: {
        portKnock: [
          { name: "a", knockPorts: [1, 2], port: 22 },
          { name: "a", knockPorts: [3, 4], port: 23 },
        ],
      },
    }),
    ["duplicate_port_knock /protections/portKnock/1/name"],
  );
});

test("forward: after the port-scan ban, ESTABLISHED packets no forward preset rule can match return", () => {
  const both = rules(
    expand({ protections: { bogusPackets: {}, portScanTrap: { ports: [139, 445] } } }),
    "protect_forward",
  );
  assert.deepEqual(
    both.slice(0, 4).map((x) => [x.match, x.action]),
    [
      [{ recent: { name: "protect_portscan", mode: "rcheck", seconds: 86400, side: "source" } }, "drop"],
      [{ ctState: ["established"], protocol: { not: "tcp" } }, "return"],
      [{ ctState: ["established"], protocol: "tcp", dport: { not: [139, 445] } }, "return"],
      [{ ctState: ["invalid"] }, "drop"],
    ],
  );
  // Without the trap in forward, no forward rule can match an ESTABLISHED packet.
  const bogus = rules(
    expand({ protections: { bogusPackets: {}, portScanTrap: { forward: false } } }),
    "protect_forward",
  );
  assert.deepEqual(bogus[0]!.match, { ctState: ["established"] });
  assert.equal(bogus[0]!.action, "return");
  // Input keeps every rule for every packet (rate limits and knocks apply to established traffic).
  const input = rules(expand({ protections: { bogusPackets: {}, portScanTrap: {} } }), "protect_input");
  assert.ok(!input.some((x) => x.action === "return"));
});
