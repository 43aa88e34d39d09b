// ACCOUNT and quota2 on a real kernel: per-address src/dst counters equal the packets and
// bytes actually sent; a down-counting quota stops matching after its budget; a grow
// counter counts. Client and server are two lab namespaces; the policy runs in the server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { applyPolicy, namedCounter, ruleCounter, setElements } from "../support/nft-lab.ts";

const lab = createLab();
let client = "";
let server = "";
let link: Link;
before(async () => {
  ({ client, server, link } = await lab.pair());
});
after(() => lab.cleanup());

const PAYLOAD = 100;
/** IPv4 (20) + UDP (8) headers: nft counters count the whole IP packet, as ACCOUNT does. */
const WIRE = PAYLOAD + 28;

test("ACCOUNT: per-address src and dst bytes/packets equal what was sent, plus the total", async () => {
  await applyPolicy(lab, server, {
    accounting: { lan: { prefix: "10.200.0.0/16" }, all: { prefix: "0.0.0.0/0" } },
    chains: {
      input: {
        hook: "input",
        rules: [
          { comment: "acct lan", match: { protocol: "udp", dport: 9000 }, action: { type: "account", table: "lan" } },
          { comment: "acct all", match: { protocol: "udp", dport: 9000 }, action: { type: "account", table: "all" } },
        ],
      },
      output: {
        hook: "output",
        // The same table from a second chain: its sets are declared once and shared.
        rules: [
          {
            comment: "acct lan out",
            match: { protocol: "udp", sport: 9000 },
            action: { type: "account", table: "lan" },
          },
        ],
      },
    },
  });
  const N = 25;
  await lab.sendUdp(client, link.b.ip4, 9000, { count: N, size: PAYLOAD });
  const src = await setElements(lab, server, "acct_lan_src");
  const dst = await setElements(lab, server, "acct_lan_dst");
  assert.deepEqual(src, [{ key: link.a.ip4, packets: N, bytes: N * WIRE }]);
  assert.deepEqual(dst, [{ key: link.b.ip4, packets: N, bytes: N * WIRE }]);
  // Per-direction totals: the packets each set was meant to see (here: every one was added).
  assert.deepEqual(await namedCounter(lab, server, "acct_lan_srctotal"), { packets: N, bytes: N * WIRE });
  assert.deepEqual(await namedCounter(lab, server, "acct_lan_dsttotal"), { packets: N, bytes: N * WIRE });
  // 0.0.0.0/0 is the one-slot case: only the total exists.
  assert.deepEqual(await namedCounter(lab, server, "acct_all_total"), { packets: N, bytes: N * WIRE });
  const sets = (await lab.nft(server, ["list", "sets", "inet"])).stdout;
  assert.ok(!sets.includes("acct_all_src"), "0.0.0.0/0 has no per-address sets");

  // A second source address on the client: a new element, the first one unchanged.
  await lab.exec(client, ["ip", "addr", "add", "10.200.1.77/24", "dev", link.a.ifname]);
  const r = await lab.exec(client, ["socat", "-u", "STDIN", `UDP4-SENDTO:${link.b.ip4}:9000,bind=10.200.1.77`], {
    input: "x".repeat(PAYLOAD),
  });
  assert.equal(r.code, 0);
  const src2 = await setElements(lab, server, "acct_lan_src");
  assert.deepEqual(src2, [
    { key: link.a.ip4, packets: N, bytes: N * WIRE },
    { key: "10.200.1.77", packets: 1, bytes: WIRE },
  ]);
  assert.deepEqual(await setElements(lab, server, "acct_lan_dst"), [
    { key: link.b.ip4, packets: N + 1, bytes: (N + 1) * WIRE },
  ]);
});

test("quota2: a byte quota matches until its budget is spent; inverted matches after; grow counts", async () => {
  const LIMIT = 1000;
  await applyPolicy(lab, server, {
    quotas: {
      budget: { mode: "bytes", limit: LIMIT },
      after: { mode: "bytes", limit: LIMIT },
      bt: { grow: true },
      started: { grow: true, limit: 5000 },
    },
    chains: {
      input: {
        hook: "input",
        rules: [
          {
            comment: "within budget",
            match: { protocol: "udp", dport: 9100, quota: { name: "budget" } },
            action: "accept",
            counter: true,
          },
          { comment: "over budget", match: { protocol: "udp", dport: 9100 }, action: "drop", counter: true },
          {
            comment: "inverted",
            match: { protocol: "udp", dport: 9200, quota: { name: "after", invert: true } },
            action: "drop",
            counter: true,
          },
          { comment: "before inverted", match: { protocol: "udp", dport: 9200 }, action: "accept", counter: true },
          {
            comment: "grow from the initial value",
            match: { protocol: "udp", dport: 9300, quota: { name: "started" } },
            action: { type: "mark", value: 1 },
          },
          {
            comment: "grow",
            match: { protocol: "udp", dport: 9300, quota: { name: "bt" } },
            action: "accept",
            counter: true,
          },
        ],
      },
    },
  });
  const N = 20;
  // The packet that brings the consumed bytes to >= the budget is the first one over it.
  const within = Math.ceil(LIMIT / WIRE) - 1;
  await lab.sendUdp(client, link.b.ip4, 9100, { count: N, size: PAYLOAD });
  assert.equal((await ruleCounter(lab, server, "input", "within budget")).packets, within);
  assert.equal((await ruleCounter(lab, server, "input", "over budget")).packets, N - within);

  await lab.sendUdp(client, link.b.ip4, 9200, { count: N, size: PAYLOAD });
  assert.equal((await ruleCounter(lab, server, "input", "before inverted")).packets, within);
  assert.equal((await ruleCounter(lab, server, "input", "inverted")).packets, N - within);

  await lab.sendUdp(client, link.b.ip4, 9300, { count: 7, size: PAYLOAD });
  // A growing quota is the counter quota_<name>_grow_<mode>; a limit is its start value.
  assert.deepEqual(await namedCounter(lab, server, "quota_bt_grow_bytes"), { packets: 7, bytes: 7 * WIRE });
  assert.deepEqual(await namedCounter(lab, server, "quota_started_grow_bytes"), { packets: 7, bytes: 5000 + 7 * WIRE });
  assert.equal((await ruleCounter(lab, server, "input", "grow")).packets, 7);
  const q = JSON.parse((await lab.nft(server, ["-j", "list", "quota", "inet", "palisade", "budget"])).stdout) as {
    nftables: { quota?: { bytes: number; used: number } }[];
  };
  assert.equal(q.nftables.find((x) => x.quota)?.quota?.bytes, LIMIT);
});
