// How policies render: the replace shape, failsafe placement, per-family splitting,
// comments on every rule, determinism, and that no string a policy can hold escapes its
// token (property test over the schema's own free-text alphabet).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { compileNft, parseGrowCounterName, renderNft } from "../../../src/engine/compile/nft/index.ts";
import { lex } from "../../../src/engine/nft/index.ts";

const render = (doc: PolicyInput, ctx = {}) => {
  const r = renderNft(Policy.parse(doc), ctx);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.text;
};
const rules = (text: string, chain: string) =>
  text.split("\n").filter((l) => l.startsWith(`add rule inet palisade ${chain} `));

test("a full replace: add + delete + define, in one text, touching only palisade tables", () => {
  const text = render({ chains: { input: { hook: "input", policy: "drop", rules: [] } } });
  assert.ok(text.startsWith("add table inet palisade\ndelete table inet palisade\nadd table inet palisade\n"), text);
  for (const line of text.trim().split("\n"))
    assert.match(line, /^(add|delete) (table|chain|rule|set|counter|quota) (inet|ip|ip6) palisade\w* ?/);
  assert.ok(!/flush ruleset/.test(text));
});

test("compileNft gives the table definitions and the transaction the driver runs", () => {
  const r = compileNft(
    Policy.parse({
      sets: { s: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
      accounting: { lan: { prefix: "10.0.0.0/24" } },
      chains: { input: { hook: "input", rules: [{ match: { saddr: "@s" }, action: "drop" }] } },
    }),
  );
  assert.ok(r.ok);
  const main = r.tables[0]!;
  assert.equal(main.table.name, "palisade");
  assert.deepEqual(
    main.sets!.map((s) => s.name),
    ["s", "acct_lan_src", "acct_lan_dst"],
  );
  assert.deepEqual(
    main.counters!.map((c) => c.name),
    ["acct_lan_srctotal", "acct_lan_dsttotal"],
  );
  assert.equal(main.sets!.find((s) => s.name === "acct_lan_src")!.size, 256);
  assert.deepEqual(
    r.transaction.ops.slice(0, 2).map((o) => o.verb),
    ["add", "delete"],
  );
});

test("failsafe: first rule of every base chain the agent's traffic crosses; exact with the agent's endpoint", () => {
  const doc: PolicyInput = {
    chains: {
      input: { hook: "input", policy: "drop", rules: [{ action: "drop" }] },
      output: { hook: "output", policy: "drop", rules: [{ action: "drop" }] },
      forward: { hook: "forward", policy: "drop", rules: [] },
      pre: { table: "raw", hook: "prerouting", rules: [{ action: "drop" }] },
    },
  };
  const byPorts = render(doc);
  // Inbound after conntrack: only replies on the agent's own connection, never any packet
  // that merely claims source port 50051.
  assert.equal(
    rules(byPorts, "input")[0],
    `add rule inet palisade input tcp sport 50051 ct state established,related accept comment "palisade failsafe: keep the agent's API connection open"`,
  );
  assert.match(rules(byPorts, "output")[0]!, /tcp dport 50051 accept/);
  // Raw chains run before conntrack: the port is all there is.
  assert.match(rules(byPorts, "pre")[0]!, /tcp sport 50051 accept/);
  assert.doesNotMatch(rules(byPorts, "pre")[0]!, /ct state/);
  assert.equal(rules(byPorts, "forward").length, 0);
  const exact = render(doc, { failsafe: { apiAddresses: ["192.0.2.7"], apiPort: 443 } });
  assert.match(
    rules(exact, "input")[0]!,
    /^add rule inet palisade input ip saddr 192\.0\.2\.7 tcp sport 443 ct state established,related accept /,
  );
  assert.match(
    rules(exact, "output")[0]!,
    /^add rule inet palisade output ip daddr 192\.0\.2\.7 tcp dport 443 accept /,
  );
  const v6 = render(doc, { failsafe: { apiAddresses: ["2001:db8::7"] } });
  assert.match(rules(v6, "output")[0]!, /ip6 daddr 2001:db8::7 tcp dport 50051 accept/);
  const off = render({ ...doc, failsafe: { enabled: false } });
  assert.ok(!off.includes("failsafe"));
});

test("mixed IPv4/IPv6 lists split per family, each rule keeps the comment", () => {
  const text = render({
    chains: {
      c: {
        rules: [
          {
            comment: "dns",
            match: { daddr: ["10.0.0.1", "10.0.0.2", "fd00::1"], protocol: "udp", dport: 53 },
            action: "accept",
          },
        ],
      },
    },
  });
  assert.deepEqual(rules(text, "c"), [
    'add rule inet palisade c ip daddr { 10.0.0.1, 10.0.0.2 } udp dport 53 accept comment "dns"',
    'add rule inet palisade c ip6 daddr fd00::1 udp dport 53 accept comment "dns"',
  ]);
  // No comment in the policy: the rule still carries one that locates it.
  const bare = render({ chains: { c: { rules: [{ action: "accept" }] } } });
  assert.deepEqual(rules(bare, "c"), ['add rule inet palisade c accept comment "c rule 0"']);
});

test("sets: intervals auto-merge, dynamic sets get room, counters and timeouts", () => {
  const text = render({
    sets: {
      nets: { type: "ipv4_addr", interval: true, elements: ["10.0.0.0/8", "10.1.0.0/16"] },
      bans: { type: "ipv4_addr", dynamic: true, timeoutSeconds: 3600, counters: true },
      ports: { type: "inet_service", elements: [22, 80] },
    },
  });
  assert.match(
    text,
    /add set inet palisade nets \{ type ipv4_addr ; flags interval ; auto-merge ; elements = \{ 10\.0\.0\.0\/8, 10\.1\.0\.0\/16 \} ; \}/,
  );
  assert.match(
    text,
    /add set inet palisade bans \{ type ipv4_addr ; flags timeout,dynamic ; timeout 3600s ; size 65536 ; counter ; \}/,
  );
  assert.match(text, /add set inet palisade ports \{ type inet_service ; elements = \{ 22, 80 \} ; \}/);
});

test("IPv6 accounting: ip6 rules and ipv6_addr sets; an aggregate keys elements by the masked address", () => {
  const text = render({
    accounting: {
      v6: { prefix: "2001:db8:0:0:1::/80" },
      per64: { prefix: "2001:DB8::/32", aggregate: 64 },
      per24: { prefix: "10.0.0.0/16", aggregate: 24 },
    },
    chains: {
      forward: {
        hook: "forward",
        rules: [
          { action: { type: "account", table: "v6" } },
          { action: { type: "account", table: "per64" } },
          { action: { type: "account", table: "per24" } },
        ],
      },
    },
  });
  assert.match(text, /add set inet palisade acct_v6_src \{ type ipv6_addr ; flags dynamic ; size 65536 ; counter ; \}/);
  assert.match(
    text,
    /meta nfproto ipv6 ip6 saddr 2001:db8:0:0:1::\/80 counter name "acct_v6_srctotal" add @acct_v6_src \{ ip6 saddr counter \}/,
  );
  assert.match(
    text,
    /meta nfproto ipv6 ip6 daddr 2001:db8:0:0:1::\/80 counter name "acct_v6_dsttotal" add @acct_v6_dst \{ ip6 daddr counter \}/,
  );
  assert.match(
    text,
    /add set inet palisade acct_per64_dst \{ type ipv6_addr ; flags dynamic ; size 65536 ; counter ; comment "aggregate \/64" ; \}/,
  );
  assert.match(
    text,
    /ip6 saddr 2001:db8::\/32 counter name "acct_per64_srctotal" add @acct_per64_src \{ ip6 saddr & ffff:ffff:ffff:ffff:: counter \}/,
  );
  assert.match(
    text,
    /ip6 daddr 2001:db8::\/32 counter name "acct_per64_dsttotal" add @acct_per64_dst \{ ip6 daddr & ffff:ffff:ffff:ffff:: counter \}/,
  );
  assert.match(
    text,
    /add set inet palisade acct_per24_src \{ type ipv4_addr ; flags dynamic ; size 256 ; counter ; comment "aggregate \/24" ; \}/,
  );
  assert.match(
    text,
    /ip saddr 10\.0\.0\.0\/16 counter name "acct_per24_srctotal" add @acct_per24_src \{ ip saddr & 255\.255\.255\.0 counter \}/,
  );
  assert.doesNotMatch(text, /meta nfproto ipv4 ip6|meta nfproto ipv6 ip saddr/);
});

test("deterministic: the same document renders byte-identical text", () => {
  const doc: PolicyInput = {
    accounting: { a: { prefix: "10.0.0.0/16" } },
    chains: { input: { hook: "input", rules: [{ action: { type: "account", table: "a" } }] } },
  };
  assert.equal(render(doc), render(structuredClone(doc)));
});

// The schema's alphabet for comments and log prefixes: printable ASCII minus `"` and `\`.
const safeChar = fc.constantFrom(
  ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).filter((c) => c !== '"' && c !== "\\"),
);
const safeText = (max: number) =>
  fc
    .array(safeChar, { minLength: 1, maxLength: max })
    .map((a) => a.join(""))
    .filter((s) => s.trim().length > 0);

test("no comment or log prefix can break out of its quoted token", () => {
  fc.assert(
    fc.property(safeText(128), safeText(29), (comment, prefix) => {
      const r = renderNft(Policy.parse({ chains: { c: { rules: [{ comment, action: { type: "log", prefix } }] } } }));
      assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
      const line = rules(r.text, "c")[0]!;
      const tokens = lex(line).tokens;
      // add rule inet palisade c log prefix "<prefix>" group 2 comment "<comment>": nothing else.
      assert.deepEqual(
        tokens.map((t) => t.kind),
        ["word", "word", "word", "word", "word", "word", "word", "string", "word", "word", "word", "string"],
      );
      assert.equal(tokens[7]!.text, `"${prefix.replace(/\$/g, "_")}"`);
      assert.deepEqual([tokens[8]!.text, tokens[9]!.text], ["group", "2"]);
      assert.equal(tokens[11]!.text, `"${comment}"`);
    }),
    { numRuns: 300 },
  );
});

test("forward accepts of port forwards come after the presets' jump, before the policy's rules", () => {
  const text = render({
    protections: { bogusPackets: {} },
    chains: {
      forward: {
        hook: "forward",
        policy: "drop",
        rules: [{ comment: "est", match: { ctState: ["established"] }, action: "accept" }],
      },
    },
    forwarding: { portForwards: [{ protocol: "tcp", port: 80, backends: [{ address: "192.168.1.2" }] }] },
  });
  assert.deepEqual(
    rules(text, "forward").map((l) => l.replace(/ comment .*$/, "")),
    [
      "add rule inet palisade forward jump protect_forward",
      "add rule inet palisade forward ip daddr 192.168.1.2 tcp dport 80 ct status dnat accept",
      "add rule inet palisade forward ct state established accept",
    ],
  );
});

test("quota2 --grow renders as the counter quota_<name>_grow_<mode>, starting at the limit (quota2's initial value)", () => {
  const r = compileNft(
    Policy.parse({
      quotas: { up: { grow: true }, pk: { grow: true, mode: "packets", limit: 40 }, by: { grow: true, limit: 1000 } },
      chains: {
        input: {
          hook: "input",
          rules: [
            { match: { quota: { name: "up" } }, action: "accept" },
            { match: { quota: { name: "pk", invert: true } }, action: "accept" },
          ],
        },
      },
    }),
  );
  assert.ok(r.ok);
  const main = r.tables[0]!;
  assert.deepEqual(
    main.counters!.map((c) => [c.name, c.packets, c.bytes]),
    [
      ["quota_up_grow_bytes", undefined, undefined],
      ["quota_pk_grow_packets", 40, undefined],
      ["quota_by_grow_bytes", undefined, 1000],
    ],
  );
  assert.deepEqual(main.quotas ?? [], []);
  assert.match(r.text, /counter name "quota_up_grow_bytes" accept/);
  assert.match(r.text, /counter name "quota_pk_grow_packets" accept/);
  for (const n of ["quota_up_grow_bytes", "quota_pk_grow_packets", "quota_by_grow_bytes"])
    assert.deepEqual(parseGrowCounterName(n), {
      quota: n.split("_")[1],
      mode: n.endsWith("packets") ? "packets" : "bytes",
    });
  assert.equal(parseGrowCounterName("bt"), undefined);
});
