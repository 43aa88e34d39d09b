// Round trip: importPolicy("iptables-save", renderIptables(p).text) is the same policy as p.
//
// "The same policy" means equal canonical forms, where canonical(p) is p with everything that
// cannot change a verdict, and that the IPv4 iptables text cannot carry, normalised away:
//   - presets expanded (expandPolicy): the render expands them, so the import sees plain rules;
//   - the IPv4 view: `family: ipv6` rules, rules whose action is IPv6-only, and IPv6 list
//     items dropped, `family: ipv4` removed
//     (the IPv4 text holds exactly the rules that can match IPv4);
//   - one rule per interface / address / ICMP type of a list, as iptables needs (the render
//     splits them; a list and its split rules match the same packets in the same order);
//   - one-element lists as scalars, host prefixes (/32) as addresses, protocols implied by
//     TCP flags or ICMP types written out, conntrack states and TCP flags in a fixed order;
//   - actions in object form; `counter: true` dropped (every iptables rule counts); a log
//     without a group without its kernelLog (on iptables it is `-j LOG` either way);
//   - named counters by name only (their comments have no place in iptables text);
//   - base chains: no policy = accept; a base chain with no rules and policy accept dropped
//     (it renders to nothing); the failsafe setting ignored (the render context decides it).
// Policies with named sets (ipset) or forwarding (rendered into Palisade's entry chains)
// are outside the round trip: the iptables-save text alone does not carry them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { Policy, normalizeAction, type Match, type PolicyInput, type Rule } from "../../../src/engine/policy/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";
import { actionFamily } from "../../../src/engine/compile/iptables/action.ts";
import { expandPolicy } from "../../../src/engine/expand/index.ts";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { ipv4Rules } from "./import-ipv6-pass.ts";

const CT = ["invalid", "new", "related", "established", "untracked"];
const FLAGS = ["fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"];
const byOrder = (order: string[]) => (a: string, b: string) => order.indexOf(a) - order.indexOf(b);
const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
const isV6 = (a: string) => a.includes(":");
const host = (a: string) => a.replace(/\/32$/, "");

type AnyMatch = Record<string, unknown>;

function negWrap(v: unknown): { value: unknown; neg: boolean } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && "not" in v
    ? { value: (v as { not: unknown }).not, neg: true }
    : { value: v, neg: false };
}
const rewrap = (neg: boolean, value: unknown) => (neg ? { not: value } : value);
const scalar = (v: unknown) => (Array.isArray(v) && v.length === 1 ? v[0] : v);

/** The IPv4 rules one policy rule stands for, canonical. */
function canonicalRules(rule: Rule): unknown[] {
  const m: AnyMatch = { ...(rule.match ?? {}) };
  if (m.family === "ipv6") return [];
  delete m.family;
  if (m.icmpv6Type !== undefined || m.protocol === "icmpv6") return [];
  // An action bound to IPv6 (DNAT to an IPv6 address, TEE to an IPv6 gateway) is in the IPv6 text only.
  if (actionFamily(normalizeAction(rule.action)) === "ipv6") return [];
  if (m.tcpFlags !== undefined && m.protocol === undefined) m.protocol = "tcp";
  if (m.icmpType !== undefined && m.protocol === undefined) m.protocol = "icmp";
  // Split dimensions (a list becomes several rules with the same target).
  let alts: AnyMatch[] = [m];
  for (const key of ["saddr", "daddr", "iif", "oif", "icmpType"] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, neg } = negWrap(v);
    let items = list(value as string | string[]);
    if (key === "saddr" || key === "daddr") items = items.filter((a) => !isV6(a)).map(host);
    if (items.length === 0) return [];
    if (neg && items.length > 1) continue; // a negated list stays one rule
    alts = alts.flatMap((a) => items.map((it) => ({ ...a, [key]: rewrap(neg, it) })));
  }
  const action = normalizeAction(rule.action);
  // A log without a group is `-j LOG` on iptables, the kernel log, whatever kernelLog says
  // (the import writes kernelLog: true, since that is what -j LOG means).
  if (action.type === "log" && action.group === undefined) delete (action as { kernelLog?: boolean }).kernelLog;
  return alts.map((a) => {
    for (const key of ["sport", "dport"] as const) {
      if (a[key] !== undefined) {
        const { value, neg } = negWrap(a[key]);
        a[key] = rewrap(neg, scalar(value));
      }
    }
    if (a.ctState !== undefined) {
      const { value, neg } = negWrap(a.ctState);
      a.ctState = rewrap(neg, [...(value as string[])].sort(byOrder(CT)));
    }
    if (a.tcpFlags !== undefined) {
      const { value, neg } = negWrap(a.tcpFlags);
      const f = value as { mask: string[]; compare: string[] };
      a.tcpFlags = rewrap(neg, {
        mask: [...f.mask].sort(byOrder(FLAGS)),
        compare: [...f.compare].sort(byOrder(FLAGS)),
      });
    }
    const out: Record<string, unknown> = { action };
    if (Object.keys(a).length > 0) out.match = a as Match;
    if (rule.comment !== undefined) out.comment = rule.comment;
    return out;
  });
}

export function canonical(input: PolicyInput | Policy): unknown {
  const p = expandPolicy(Policy.parse(input));
  const chains: Record<string, unknown> = {};
  for (const [name, c] of Object.entries(p.chains)) {
    const rules = c.rules.flatMap(canonicalRules);
    const policy = c.hook ? (c.policy ?? "accept") : undefined;
    if (c.hook && rules.length === 0 && policy === "accept") continue;
    chains[name] = { table: c.table, hook: c.hook, policy, rules };
  }
  // Counter comments are metadata the iptables text has no place for.
  const counters = Object.fromEntries(Object.keys(p.counters).map((k) => [k, {}]));
  return { chains, counters, quotas: p.quotas, accounting: p.accounting, sets: p.sets, forwarding: p.forwarding };
}

export function roundTrip(doc: PolicyInput): { imported: Policy; text: string } {
  const original = Policy.parse(doc);
  const r = renderIptables(original);
  assert.ok(r.ok, `renders: ${JSON.stringify(!r.ok && r.errors)}`);
  const i = importPolicy("iptables-save", r.text);
  assert.deepEqual(i.errors, [], `imports without errors:\n${r.text}`);
  assert.ok(i.policy);
  return { imported: i.policy, text: r.text };
}

function assertSame(doc: PolicyInput): Policy {
  const { imported, text } = roundTrip(doc);
  assert.deepEqual(canonical(imported), canonical(doc), `round trip differs; rendered:\n${text}`);
  return imported;
}

const GOLDEN = join(import.meta.dirname, "../../golden/iptables/policies");

test("round trip: the golden nat/raw/meters policy", () => {
  assertSame(JSON.parse(readFileSync(join(GOLDEN, "nat-raw-meters.json"), "utf8")));
});

test("round trip: the golden xtables-addons policy (ACCOUNT, quota2, LOGMARK, IPMARK, TEE, RAWNAT, xt matches)", () => {
  const doc = JSON.parse(readFileSync(join(GOLDEN, "xtables-addons.json"), "utf8")) as PolicyInput;
  // LOGMARK with an NFLOG group renders as NFLOG, which reads back as a log action: leave that one rule out.
  const chains = doc.chains!;
  chains.forward!.rules = chains.forward!.rules!.filter(
    (r) => !(typeof r.action === "object" && r.action.type === "logmark" && r.action.group !== undefined),
  );
  const imported = assertSame(doc);
  assert.deepEqual(imported.accounting, { all_outgoing: { prefix: "0.0.0.0/0" }, sales: { prefix: "192.168.1.0/24" } });
  assert.equal(validatePolicy(imported).errors.length, 0);
});

test("round trip: the golden quota2 bytebucket (grow per rule) comes back as the same mixed counter", () => {
  const imported = assertSame(JSON.parse(readFileSync(join(GOLDEN, "quota2-bytebucket.json"), "utf8")));
  assert.deepEqual(imported.quotas, { bt: { mode: "bytes", limit: 0 } });
  // An IPv4 dump: behind the rule that lets IPv6 pass (the round trip compares the IPv4 rules).
  assert.deepEqual(ipv4Rules(imported.chains.input?.rules)[0]?.match?.quota, { name: "bt", grow: true });
});

test("round trip: a host policy with user chains, named counters, logs, rejects, lists, marks", () => {
  const imported = assertSame({
    counters: { web: {}, ssh: {} },
    chains: {
      input: {
        hook: "input",
        policy: "drop",
        rules: [
          { comment: "loopback", match: { iif: "lo" }, action: "accept" },
          { match: { ctState: ["related", "established"] }, action: "accept", counter: true },
          { match: { protocol: "tcp", dport: [80, 443] }, action: { type: "counter", name: "web" } },
          { comment: "counted ssh", match: { protocol: "tcp", dport: 22 }, action: { type: "counter", name: "ssh" } },
          { comment: "web", match: { protocol: "tcp", dport: [80, 443], ctState: ["new"] }, action: "accept" },
          {
            match: { saddr: ["192.0.2.0/24", "198.51.100.7", "2001:db8::/32"], protocol: "tcp", dport: 22 },
            action: { type: "jump", chain: "ssh_in" },
          },
          {
            match: { icmpType: ["echo-request", "destination-unreachable"], limit: { rate: "1/second", burst: 5 } },
            action: "accept",
          },
          {
            match: {
              saddr: { not: "10.0.0.0/8" },
              daddr: "10.1.2.3",
              protocol: "udp",
              sport: "1024-65535",
              dport: { not: 53 },
            },
            action: { type: "reject", with: "icmp-admin-prohibited" },
          },
          { match: { tcpFlags: { mask: ["syn", "fin"], compare: ["syn", "fin"] } }, action: "drop" },
          { match: { protocol: "tcp" }, action: { type: "log", prefix: "drop tcp: ", level: "info" } },
          { match: { family: "ipv6", protocol: "udp" }, action: "drop" },
          { match: { protocol: "tcp" }, action: { type: "reject", with: "tcp-reset" } },
        ],
      },
      ssh_in: {
        rules: [
          {
            match: { recent: { name: "sshin", mode: "update", seconds: 60, hitcount: 4, side: "source" } },
            action: "drop",
          },
          { match: { recent: { name: "sshin", mode: "set", side: "source" } }, action: "accept" },
        ],
      },
      output: {
        hook: "output",
        rules: [
          { match: { oif: ["eth*", "wg0"], mark: { value: 1, mask: 255 } }, action: { type: "jump", chain: "audit" } },
        ],
      },
      audit: { rules: [{ action: { type: "log", prefix: "out:", group: 5 } }, { action: "return" }] },
      mangle_pre: {
        table: "mangle",
        hook: "prerouting",
        rules: [
          { match: { protocol: "tcp", dport: 25 }, action: { type: "mark", value: 16, mask: 240 } },
          { action: { type: "connmark", op: "save" } },
        ],
      },
    },
  });
  assert.deepEqual(imported.counters, { web: {}, ssh: {} });
  assert.equal(imported.chains.input?.policy, "drop");
  assert.equal(imported.failsafe.enabled, true);
});

test("round trip: protection presets come back as their expansion", () => {
  const doc: PolicyInput = {
    chains: {
      input: { hook: "input", policy: "drop", rules: [{ match: { protocol: "tcp", dport: 22 }, action: "accept" }] },
    },
    protections: {
      bogusPackets: {},
      icmpFlood: {},
      rstFlood: {},
      synFlood: {},
      portScanTrap: {},
      portKnock: [{ name: "SSH", knockPorts: [4002, 4001, 4004], port: 22 }],
    },
  };
  const imported = assertSame(doc);
  assert.ok(imported.chains.protect_input, "the preset chain is imported as a user chain");
  assert.equal(validatePolicy(imported).errors.length, 0);
});

test("round trip: failsafe ports come back from the failsafe rules", () => {
  const { imported } = roundTrip({
    failsafe: { enabled: true, ports: [8443] },
    chains: { input: { hook: "input", rules: [{ action: "drop" }] } },
  });
  assert.deepEqual(imported.failsafe, { enabled: true, ports: [8443] });
  const off = roundTrip({
    failsafe: { enabled: false },
    chains: { input: { hook: "input", rules: [{ action: "drop" }] } },
  });
  assert.equal(off.imported.failsafe.enabled, false);
});

// Random filter policies from the part of the schema both sides express, checked the same way.
const addr = fc.constantFrom("10.0.0.0/8", "192.0.2.1", "198.51.100.0/24", "2001:db8::/32");
const port = fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom("1000-2000", "6000-6010"));
const matchArb: fc.Arbitrary<Match> = fc
  .record(
    {
      saddr: fc.oneof(
        addr,
        fc.array(addr, { minLength: 1, maxLength: 3 }),
        addr.map((a) => ({ not: a })),
      ),
      daddr: addr,
      proto: fc.constantFrom("tcp", "udp"),
      dport: fc.oneof(
        port,
        fc.array(port, { minLength: 1, maxLength: 4 }),
        port.map((p) => ({ not: p })),
      ),
      iif: fc.oneof(
        fc.constantFrom("eth0", "wg*", "lo"),
        fc.constant(["eth0", "eth1"]).map((l) => [...l]),
      ),
      ctState: fc.subarray(["new", "established", "related", "invalid"], { minLength: 1 }),
      mark: fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constant({ value: 1, mask: 0xff })),
      length: fc.constantFrom(64, "0-100"),
      limit: fc.record({ rate: fc.constantFrom("5/second", "10/minute"), burst: fc.integer({ min: 1, max: 20 }) }),
    },
    { requiredKeys: [] },
  )
  .map((r) => {
    const m: Match = {};
    if (r.saddr !== undefined) m.saddr = r.saddr;
    if (r.daddr !== undefined) m.daddr = r.daddr;
    if (r.dport !== undefined) {
      m.protocol = (r.proto ?? "tcp") as "tcp" | "udp";
      m.dport = r.dport;
    } else if (r.proto !== undefined) m.protocol = r.proto as "tcp" | "udp";
    if (r.iif !== undefined) m.iif = r.iif;
    if (r.ctState !== undefined) m.ctState = r.ctState as Match["ctState"] & string[];
    if (r.mark !== undefined) m.mark = r.mark;
    if (r.length !== undefined) m.length = r.length;
    if (r.limit !== undefined) m.limit = r.limit;
    return m;
  });
const actionArb = fc.oneof(
  fc.constantFrom<Rule["action"]>(
    "accept",
    "drop",
    "return",
    { type: "reject", with: "icmp-port-unreachable" },
    { type: "log", prefix: "x: ", level: "warn" },
    { type: "mark", value: 7 },
  ),
);
const ruleArb: fc.Arbitrary<Rule> = fc
  .record({
    match: matchArb,
    action: actionArb,
    comment: fc.option(fc.stringMatching(/^[a-z ]{1,20}$/), { nil: undefined }),
  })
  .map((r) => {
    const out: Rule = { action: r.action };
    if (Object.keys(r.match).length > 0) out.match = r.match;
    if (r.comment !== undefined) out.comment = r.comment;
    return out;
  });

test("round trip property: random filter policies", () => {
  fc.assert(
    fc.property(
      fc.array(ruleArb, { maxLength: 8 }),
      fc.array(ruleArb, { maxLength: 4 }),
      fc.constantFrom<"accept" | "drop" | undefined>("accept", "drop", undefined),
      (inRules, userRules, pol) => {
        const doc: PolicyInput = {
          chains: {
            input: {
              hook: "input",
              ...(pol ? { policy: pol } : {}),
              rules: [...inRules, { action: { type: "jump", chain: "extra" } }],
            },
            extra: { rules: userRules },
          },
        };
        if (!validatePolicy(doc).ok) return;
        assertSame(doc);
      },
    ),
    { numRuns: 150 },
  );
});
