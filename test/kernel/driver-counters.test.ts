// Counters, per-element set counters and quotas read back after real packets, with
// exact packet and byte counts; reset returns exactly the values it zeroed.
// client --veth-- server; Palisade's table is applied in the server namespace.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import {
  apply,
  readCounter,
  readCounters,
  readQuota,
  readQuotas,
  readSet,
  resetCounter,
  resetCounters,
  resetQuota,
  resetQuotas,
  listRuleset,
  NftError,
} from "../../src/engine/driver/index.ts";
import { replaceTables, type TableDefinition } from "../../src/engine/nft/index.ts";

const lab = createLab();
let client = "";
let server = "";
let link: Link;
const opts = () => ({ netns: server });
const T = { family: "inet" as const, table: "palisade" };

// IPv4 echo request with 56 payload bytes = 20 + 8 + 56 = 84 bytes at L3.
const PING_BYTES = 84;
// UDP datagram with 100 payload bytes = 20 + 8 + 100 = 128 bytes; over IPv6 = 40 + 8 + 100 = 148.
const UDP_BYTES = 128;
const UDP6_BYTES = 148;

function policy(): TableDefinition {
  return {
    table: { kind: "table", family: "inet", name: "palisade" },
    counters: [
      { kind: "counter", ...T, name: "icmp_in" },
      { kind: "counter", ...T, name: "udp_in" },
    ],
    quotas: [
      { kind: "quota", ...T, name: "udp_budget", mode: "until", bytes: 1_000_000 },
      { kind: "quota", ...T, name: "small", mode: "over", bytes: 300 },
    ],
    sets: [
      // ACCOUNT-style: one element per source address, each with its own counter.
      { kind: "set", ...T, name: "acct_src", type: "ipv4_addr", flags: ["dynamic"], counter: true, size: 65536 },
      { kind: "set", ...T, name: "acct_src6", type: "ipv6_addr", flags: ["dynamic"], counter: true, size: 65536 },
      {
        kind: "set",
        ...T,
        name: "static_ctr",
        type: "ipv4_addr",
        flags: ["interval"],
        counter: true,
        elements: [{ key: `${link.net4}` }, { key: "192.0.2.0/24" }],
      },
    ],
    chains: [{ kind: "chain", ...T, name: "input", type: "filter", hook: "input", priority: 0, policy: "accept" }],
    rules: [
      {
        kind: "rule",
        ...T,
        chain: "input",
        body: `iifname "${link.b.ifname}" ip saddr ${link.a.ip4} update @acct_src { ip saddr }`,
      },
      {
        kind: "rule",
        ...T,
        chain: "input",
        body: `iifname "${link.b.ifname}" ip6 saddr ${link.a.ip6} meta l4proto udp update @acct_src6 { ip6 saddr }`,
      },
      { kind: "rule", ...T, chain: "input", body: `iifname "${link.b.ifname}" ip saddr @static_ctr` },
      {
        kind: "rule",
        ...T,
        chain: "input",
        body: `ip saddr ${link.a.ip4} icmp type echo-request counter name "icmp_in"`,
      },
      {
        kind: "rule",
        ...T,
        chain: "input",
        body: `ip saddr ${link.a.ip4} udp dport 9999 counter name "udp_in" quota name "udp_budget"`,
      },
      { kind: "rule", ...T, chain: "input", body: `ip saddr ${link.a.ip4} udp dport 9999 quota name "small"` },
    ],
  };
}

before(async () => {
  ({ client, server, link } = await lab.pair());
  await apply(replaceTables([policy()]), opts());
  const ping = await lab.ping(client, link.b.ip4, { count: 5 });
  assert.deepEqual(ping, { sent: 5, received: 5 });
  await lab.sendUdp(client, link.b.ip4, 9999, { count: 7, size: 100 });
  await lab.sendUdp(client, link.b.ip6, 9999, { count: 4, size: 100 });
});
after(() => lab.cleanup());

test("named counters count exactly the packets and bytes sent", async () => {
  const icmp = await readCounter("inet", "palisade", "icmp_in", opts());
  assert.deepEqual({ packets: icmp.packets, bytes: icmp.bytes }, { packets: 5, bytes: 5 * PING_BYTES });
  const all = await readCounters("inet", "palisade", opts());
  assert.deepEqual(
    all.map((c) => [c.name, c.packets, c.bytes]),
    [
      ["icmp_in", 5, 5 * PING_BYTES],
      ["udp_in", 7, 7 * UDP_BYTES],
    ],
  );
});

test("dynamic sets count per element (ACCOUNT), for IPv4 and IPv6", async () => {
  const s = await readSet("inet", "palisade", "acct_src", opts());
  assert.equal(s.counter, true);
  assert.deepEqual(s.elements, [{ key: link.a.ip4, packets: 5 + 7, bytes: 5 * PING_BYTES + 7 * UDP_BYTES }]);
  const s6 = await readSet("inet", "palisade", "acct_src6", opts());
  assert.deepEqual(s6.elements, [{ key: link.a.ip6, packets: 4, bytes: 4 * UDP6_BYTES }]);
});

test("interval sets with counters report per prefix, keys in nft syntax", async () => {
  const s = await readSet("inet", "palisade", "static_ctr", opts());
  const byKey = Object.fromEntries(s.elements.map((e) => [e.key, [e.packets, e.bytes]]));
  assert.deepEqual(byKey, { [link.net4]: [12, 5 * PING_BYTES + 7 * UDP_BYTES], "192.0.2.0/24": [0, 0] });
});

test("quotas report budget, used bytes and mode", async () => {
  const q = await readQuota("inet", "palisade", "udp_budget", opts());
  assert.deepEqual([q.mode, q.bytes, q.used], ["until", 1_000_000, 7 * UDP_BYTES]);
  const all = await readQuotas("inet", "palisade", opts());
  // Measured: the kernel reports `used` capped at the budget (896 bytes went through "small").
  assert.deepEqual(
    all.map((x) => [x.name, x.mode, x.bytes, x.used]),
    [
      ["udp_budget", "until", 1_000_000, 7 * UDP_BYTES],
      ["small", "over", 300, 300],
    ],
  );
});

test("the whole ruleset parses into typed state", async () => {
  const st = await listRuleset(opts());
  assert.equal(st.nftVersion, (await lab.nft(server, ["--version"])).stdout.match(/v([\d.]+)/)?.[1]);
  assert.deepEqual(st.tables, [{ family: "inet", name: "palisade" }]);
  assert.deepEqual(
    st.chains.map((c) => [c.name, c.hook, c.priority, c.policy]),
    [["input", "input", 0, "accept"]],
  );
  assert.equal(st.rules.length, 6);
  assert.deepEqual(
    st.sets.map((s) => s.name),
    ["acct_src", "acct_src6", "static_ctr"],
  );
});

test("reset returns exactly the values it zeroed, and zeroes them", async () => {
  const one = await resetCounter("inet", "palisade", "icmp_in", opts());
  assert.deepEqual([one.packets, one.bytes], [5, 5 * PING_BYTES]);
  assert.equal((await readCounter("inet", "palisade", "icmp_in", opts())).packets, 0);

  await lab.ping(client, link.b.ip4, { count: 2 });
  const all = await resetCounters("inet", "palisade", opts());
  assert.deepEqual(
    all.map((c) => [c.name, c.packets, c.bytes]),
    [
      ["icmp_in", 2, 2 * PING_BYTES],
      ["udp_in", 7, 7 * UDP_BYTES],
    ],
  );
  assert.deepEqual(
    (await readCounters("inet", "palisade", opts())).map((c) => c.packets),
    [0, 0],
  );

  const q = await resetQuota("inet", "palisade", "small", opts());
  assert.equal(q.used, 300);
  const qs = await resetQuotas("inet", "palisade", opts());
  assert.deepEqual(
    qs.map((x) => [x.name, x.used]),
    [
      ["udp_budget", 7 * UDP_BYTES],
      ["small", 0],
    ],
  );
  assert.deepEqual(
    (await readQuotas("inet", "palisade", opts())).map((x) => x.used),
    [0, 0],
  );
});

test("reads and resets of missing objects or foreign tables are typed errors", async () => {
  await assert.rejects(
    readCounter("inet", "palisade", "nope", opts()),
    (e: unknown) => e instanceof NftError && e.code === "not_found",
  );
  await assert.rejects(
    resetCounters("inet", "other", opts()),
    (e: unknown) => e instanceof NftError && e.code === "foreign_table",
  );
  await assert.rejects(
    readSet("inet", "palisade", "-c", opts()),
    (e: unknown) => e instanceof NftError && e.code === "invalid_argument",
  );
  await assert.rejects(
    readCounters("inet", "palisade", { netns: "pal-no-such-ns" }),
    (e: unknown) => e instanceof NftError && e.code === "netns_not_found",
  );
});
