// Property: any policy document either fails validation with diagnostics, or (when it
// validates) renders to nftables text that the real `nft -c` accepts — or the renderer
// refuses it with diagnostics that name a path. Nothing in between: no valid policy may
// produce text the kernel rejects.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createLab } from "../support/netns.ts";
import { check } from "../../src/engine/driver/index.ts";
import { renderNft, validatePolicy } from "../../src/engine/index.ts";

const lab = createLab();
let ns = "";
before(async () => {
  ns = await lab.addNamespace();
});
after(() => lab.cleanup());

const v4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
const v4cidr = fc.tuple(v4, fc.integer({ min: 8, max: 32 })).map(([a, l]) => `${a}/${l}`);
const v6 = fc.constantFrom("2001:db8::1", "2001:db8::/32", "fd00::/8", "::1", "fe80::/10");
const addr = fc.oneof(v4, v4cidr, v6, fc.constant("@blocklist"));
const port = fc.integer({ min: 1, max: 65535 });
const ports = fc.oneof(
  port,
  fc.array(port, { minLength: 1, maxLength: 4 }),
  fc.tuple(port, port).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
);
const neg = <T>(a: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 4, arbitrary: a }, { weight: 1, arbitrary: a.map((not) => ({ not })) });
const iface = fc.constantFrom("eth0", "wan0", "lo", "veth*", "br-lan");
const text = fc.string({ maxLength: 40 });

const match = fc.record(
  {
    saddr: neg(fc.oneof(addr, fc.array(addr, { minLength: 1, maxLength: 3 }))),
    daddr: neg(addr),
    protocol: neg(fc.constantFrom("tcp", "udp", "icmp", "icmpv6", "sctp")),
    dport: neg(ports),
    sport: ports,
    iif: neg(iface),
    oif: iface,
    ctState: neg(fc.subarray(["new", "established", "related", "invalid", "untracked"], { minLength: 1 })),
    tcpFlags: fc.constantFrom(
      { mask: ["syn", "fin"], compare: ["syn", "fin"] },
      { mask: ["syn", "rst", "ack"], compare: ["syn"] },
    ),
    icmpType: fc.constantFrom("echo-request", "timestamp-request", ["echo-reply", "destination-unreachable"]),
    length: neg(fc.oneof(fc.integer({ min: 0, max: 1500 }), fc.constant("64-128"))),
    mark: neg(fc.oneof(fc.nat(0xffff), fc.record({ value: fc.nat(0xff), mask: fc.constant(0xff) }))),
    ctmark: fc.nat(0xffff),
    daddrType: fc.constant(["broadcast", "multicast"]),
    rpfilter: fc.constant("fail"),
    limit: fc.record(
      { rate: fc.constantFrom("1/second", "10/minute", "5/hour"), burst: fc.integer({ min: 1, max: 20 }) },
      { requiredKeys: ["rate"] },
    ),
    meter: fc.record({ name: fc.constantFrom("m1", "m2"), rate: fc.constantFrom("60/second", "5/minute") }),
    recent: fc.record(
      {
        name: fc.constantFrom("scan", "knock"),
        mode: fc.constantFrom("set", "update", "rcheck", "remove"),
        seconds: fc.constantFrom(60, 3600),
      },
      { requiredKeys: ["name", "mode"] },
    ),
    quota: fc.record({ name: fc.constantFrom("q1", "g1"), invert: fc.boolean() }, { requiredKeys: ["name"] }),
  },
  { requiredKeys: [] },
);

const action = fc.oneof(
  fc.constantFrom("accept", "drop", "return", "notrack"),
  fc.record({
    type: fc.constant("reject"),
    with: fc.constantFrom("icmp-port-unreachable", "tcp-reset", "icmp-admin-prohibited"),
  }),
  fc.record(
    { type: fc.constant("log"), prefix: text, level: fc.constantFrom("warn", "info"), group: fc.nat(10) },
    { requiredKeys: ["type"] },
  ),
  fc.record({ type: fc.constant("counter"), name: fc.constant("hits") }),
  fc.record({ type: fc.constant("mark"), value: fc.nat(0xffff) }),
  fc.record(
    { type: fc.constant("connmark"), op: fc.constantFrom("set", "save", "restore"), value: fc.nat(0xff) },
    { requiredKeys: ["type", "op"] },
  ),
  fc.record({ type: fc.constant("account"), table: fc.constant("lan") }),
  fc.record(
    { type: fc.constant("logmark"), prefix: fc.string({ maxLength: 29 }), level: fc.nat(8) },
    { requiredKeys: ["type"] },
  ),
  fc.record({ type: fc.constant("jump"), chain: fc.constant("user") }),
  fc.record({ type: fc.constantFrom("dnat", "snat"), to: fc.record({ address: v4, port }, { requiredKeys: [] }) }),
  fc.record({ type: fc.constant("masquerade") }),
  fc.record({ type: fc.constant("tarpit") }),
  fc.record({ type: fc.constant("mirror") }),
);

const rule = fc.record({ comment: text, match, action, counter: fc.boolean() }, { requiredKeys: ["action"] });
const baseChain = (hook: string) =>
  fc.record({
    table: fc.constant("filter"),
    hook: fc.constant(hook),
    policy: fc.constantFrom("accept", "drop"),
    rules: fc.array(rule, { maxLength: 5 }),
  });
// Any table and hook: mostly refused by placement rules, which is part of the property.
const anyChain = fc.record(
  {
    table: fc.constantFrom("filter", "nat", "mangle", "raw"),
    hook: fc.constantFrom("prerouting", "input", "forward", "output", "postrouting"),
    rules: fc.array(rule, { maxLength: 3 }),
  },
  { requiredKeys: ["rules"] },
);

const policy = fc.record(
  {
    chains: fc.record(
      {
        input: baseChain("input"),
        forward: baseChain("forward"),
        other: anyChain,
        user: fc.record({ rules: fc.array(rule, { maxLength: 3 }) }),
      },
      { requiredKeys: [] },
    ),
    sets: fc.constant({ blocklist: { type: "ipv4_addr", interval: true, elements: ["192.0.2.0/24", "198.51.100.7"] } }),
    counters: fc.constant({ hits: {} }),
    quotas: fc.constant({ q1: { mode: "bytes", limit: 1000000 }, g1: { mode: "bytes", grow: true } }),
    accounting: fc.constant({ lan: { prefix: "10.1.0.0/16" } }),
    protections: fc.record(
      { bogusPackets: fc.constant({}), synFlood: fc.constant({}), portScanTrap: fc.constant({ banSeconds: 60 }) },
      { requiredKeys: [] },
    ),
    failsafe: fc.record({ enabled: fc.boolean() }),
  },
  { requiredKeys: [] },
);

// Coherent documents (protocols with their ports, flags and ICMP types; network
// addresses; safe text; features the nftables target has): most of them validate, so a
// large share of the runs reaches `nft -c`. The hostile generator above exercises the
// diagnostics; the mix below draws three coherent documents for each hostile one.
const safeText = fc.stringMatching(/^[a-z0-9 ._-]{0,24}$/);
const net = fc.constantFrom(
  "10.0.0.0/8",
  "192.0.2.0/24",
  "198.51.100.0/25",
  "203.0.113.7",
  "172.16.0.0/12",
  "2001:db8::/32",
  "fd00::/8",
  "2001:db8::1",
);
const addrOk = fc.oneof(v4, net, fc.constant("@blocklist"));
const l4 = fc.oneof(
  fc.record(
    {
      protocol: fc.constant("tcp"),
      dport: neg(ports),
      sport: ports,
      tcpFlags: fc.constantFrom({ mask: ["syn", "rst", "ack"], compare: ["syn"] }),
    },
    { requiredKeys: ["protocol"] },
  ),
  fc.record({ protocol: fc.constant("udp"), dport: neg(ports), sport: ports }, { requiredKeys: ["protocol"] }),
  fc.record(
    {
      protocol: fc.constant("icmp"),
      icmpType: fc.constantFrom("echo-request", ["echo-reply", "destination-unreachable"]),
    },
    { requiredKeys: ["protocol"] },
  ),
  fc.record({}),
);
const common = fc.record(
  {
    saddr: neg(fc.oneof(addrOk, fc.array(v4, { minLength: 1, maxLength: 3 }))),
    ctState: neg(fc.subarray(["new", "established", "related", "invalid"], { minLength: 1 })),
    length: fc.integer({ min: 0, max: 1500 }),
    mark: fc.nat(0xffff),
    limit: fc.record(
      { rate: fc.constantFrom("1/second", "10/minute"), burst: fc.integer({ min: 1, max: 20 }) },
      { requiredKeys: ["rate"] },
    ),
    quota: fc.constant({ name: "q1" }),
  },
  { requiredKeys: [] },
);
const matchOk = fc.tuple(l4, common).map(([a, b]) => ({ ...b, ...a }));
const actionOk = fc.oneof(
  fc.constantFrom("accept", "drop", "return"),
  fc.record({ type: fc.constant("reject"), with: fc.constant("icmp-admin-prohibited") }),
  fc.record(
    { type: fc.constant("log"), prefix: safeText.filter((t) => t.length > 0), level: fc.constantFrom("warn", "info") },
    { requiredKeys: ["type"] },
  ),
  fc.record({ type: fc.constant("counter"), name: fc.constant("hits") }),
  fc.record({ type: fc.constant("mark"), value: fc.nat(0xffff) }),
  fc.record({ type: fc.constant("account"), table: fc.constant("lan") }),
);
const ruleOk = (jump: boolean) =>
  fc.record(
    {
      comment: safeText,
      match: matchOk,
      action: jump
        ? fc.oneof(
            { weight: 5, arbitrary: actionOk },
            { weight: 1, arbitrary: fc.constant({ type: "jump", chain: "user" }) },
          )
        : actionOk,
      counter: fc.boolean(),
    },
    { requiredKeys: ["action"] },
  );
const chainOk = (hook: string) =>
  fc.record({
    table: fc.constant("filter"),
    hook: fc.constant(hook),
    policy: fc.constantFrom("accept", "drop"),
    rules: fc.array(ruleOk(true), { maxLength: 6 }),
  });
const coherentPolicy = fc.record(
  {
    chains: fc.record(
      {
        input: chainOk("input"),
        forward: chainOk("forward"),
        output: chainOk("output"),
        user: fc.record({ rules: fc.array(ruleOk(false), { maxLength: 3 }) }),
      },
      { requiredKeys: ["input", "user"] },
    ),
    sets: fc.constant({ blocklist: { type: "ipv4_addr", interval: true, elements: ["192.0.2.0/24", "198.51.100.7"] } }),
    counters: fc.constant({ hits: {} }),
    quotas: fc.constant({ q1: { mode: "bytes", limit: 1000000 } }),
    accounting: fc.constant({ lan: { prefix: "10.1.0.0/16" } }),
    protections: fc.record(
      { bogusPackets: fc.constant({}), synFlood: fc.constant({}), portScanTrap: fc.constant({ banSeconds: 60 }) },
      { requiredKeys: [] },
    ),
    failsafe: fc.record({ enabled: fc.boolean() }),
  },
  { requiredKeys: ["chains", "sets", "counters", "quotas", "accounting"] },
);
const anyPolicy = fc.oneof({ weight: 3, arbitrary: coherentPolicy }, { weight: 1, arbitrary: policy });

/** The node a JSON pointer names in `doc`, or undefined when it does not exist. */
function resolve(doc: unknown, pointer: string): { found: boolean; parentFound: boolean } {
  if (pointer === "") return { found: true, parentFound: true };
  const parts = pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  let node: unknown = doc;
  for (let i = 0; i < parts.length; i++) {
    if (node === null || typeof node !== "object" || !(parts[i]! in (node as object)))
      return { found: false, parentFound: i === parts.length - 1 };
    node = (node as Record<string, unknown>)[parts[i]!];
  }
  return { found: true, parentFound: true };
}

/** Every diagnostic names a JSON pointer into the document: to a node that exists, or to a missing key of one that does. */
function assertPaths(doc: unknown, errors: { path: string; code: string }[]): void {
  for (const e of errors) {
    assert.ok(
      e.path === "" || e.path.startsWith("/"),
      `${e.code}: path ${JSON.stringify(e.path)} is not a JSON pointer`,
    );
    const r = resolve(doc, e.path);
    assert.ok(
      r.found || r.parentFound,
      `${e.code}: path ${e.path} names nothing in the document ${JSON.stringify(doc)}`,
    );
  }
}

test("random policies: validation errors, or text nft -c accepts, or render diagnostics — never text the kernel rejects", async () => {
  let valid = 0;
  let rendered = 0;
  let runs = 0;
  let withPaths = 0;
  await fc.assert(
    fc.asyncProperty(anyPolicy, async (doc) => {
      runs++;
      const v = validatePolicy(doc, { target: "nftables" });
      if (!v.ok) {
        assert.ok(v.errors.length > 0, "an invalid policy must say why");
        for (const e of v.errors)
          assert.ok(e.code && e.message, `diagnostic without code/message: ${JSON.stringify(e)}`);
        assertPaths(doc, v.errors);
        if (v.errors.some((e) => e.path !== "")) withPaths++;
        return;
      }
      valid++;
      const r = renderNft(v.policy!);
      if (!r.ok) {
        assert.ok(r.errors.length > 0);
        for (const e of r.errors)
          assert.ok(e.code && e.message, `render diagnostic without code/message: ${JSON.stringify(e)}`);
        assertPaths(doc, r.errors);
        return;
      }
      rendered++;
      try {
        await check(r.text, { netns: ns });
      } catch (err) {
        assert.fail(
          `nft -c rejected a validated policy: ${(err as Error).message}\npolicy: ${JSON.stringify(doc)}\n${r.text}`,
        );
      }
    }),
    { numRuns: 300, seed: Number(process.env.FC_SEED ?? 20261122), endOnFailure: true },
  );
  console.log(
    `property: ${runs} runs, ${valid} valid, ${rendered} rendered and checked by nft -c, ${withPaths} refused with paths`,
  );
  // Both branches must be reached, or the property proves nothing: most runs reach nft -c
  // (coherent documents), and refused documents' diagnostics point into them.
  assert.ok(
    rendered >= runs / 2,
    `only ${rendered} of ${runs} runs reached nft -c (${valid} valid); the generator is too hostile`,
  );
  assert.ok(withPaths >= runs / 10, `only ${withPaths} of ${runs} runs were refused with a diagnostic path`);
});
