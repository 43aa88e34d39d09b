// A full replace normally resets everything the kernel counted; carryState() puts the
// kernel's counters, quota usage and dynamic set elements into the new definitions,
// so a re-apply in one atomic transaction keeps them.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { apply, readTable, type RulesetState } from "../../src/engine/driver/index.ts";
import { carryState, replaceTables, type TableDefinition } from "../../src/engine/nft/index.ts";

const lab = createLab();
let client = "";
let server = "";
let link: Link;
const opts = () => ({ netns: server });
const T = { family: "inet" as const, table: "palisade" };

function policy(extraRule = false): TableDefinition {
  return {
    table: { kind: "table", family: "inet", name: "palisade" },
    counters: [{ kind: "counter", ...T, name: "icmp_in" }],
    quotas: [{ kind: "quota", ...T, name: "budget", mode: "until", bytes: 10_000_000 }],
    sets: [
      { kind: "set", ...T, name: "acct", type: "ipv4_addr", flags: ["dynamic"], counter: true, size: 1024 },
      { kind: "set", ...T, name: "seen", type: "ipv4_addr", flags: ["dynamic", "timeout"], timeout: 3600, size: 1024 },
      {
        kind: "set",
        ...T,
        name: "nets",
        type: "ipv4_addr",
        flags: ["interval"],
        counter: true,
        elements: [{ key: link.net4 }],
      },
    ],
    chains: [{ kind: "chain", ...T, name: "input", type: "filter", hook: "input", priority: 0, policy: "accept" }],
    rules: [
      { kind: "rule", ...T, chain: "input", body: `ip saddr ${link.a.ip4} update @acct { ip saddr }` },
      { kind: "rule", ...T, chain: "input", body: `ip saddr ${link.a.ip4} update @seen { ip saddr }` },
      { kind: "rule", ...T, chain: "input", body: "ip saddr @nets" },
      {
        kind: "rule",
        ...T,
        chain: "input",
        body: `ip saddr ${link.a.ip4} icmp type echo-request counter name "icmp_in" quota name "budget"`,
      },
      ...(extraRule
        ? [{ kind: "rule" as const, ...T, chain: "input", body: "tcp dport 22 accept", comment: "v2" }]
        : []),
    ],
  };
}

function summary(st: RulesetState) {
  return {
    counters: st.counters.map((c) => [c.name, c.packets, c.bytes]),
    quotas: st.quotas.map((q) => [q.name, q.used]),
    acct: st.sets.find((s) => s.name === "acct")?.elements.map((e) => [e.key, e.packets, e.bytes]),
    seen: st.sets.find((s) => s.name === "seen")?.elements.map((e) => e.key),
    nets: st.sets.find((s) => s.name === "nets")?.elements.map((e) => [e.key, e.packets, e.bytes]),
  };
}

before(async () => {
  ({ client, server, link } = await lab.pair());
  await apply(replaceTables([policy()]), opts());
  assert.equal((await lab.ping(client, link.b.ip4, { count: 4 })).received, 4);
});
after(() => lab.cleanup());

test("a re-apply with carried state keeps counters, quota usage and dynamic elements", async () => {
  const before = await readTable("inet", "palisade", opts());
  const want = summary(before);
  assert.deepEqual(want.counters, [["icmp_in", 4, 4 * 84]]);
  assert.deepEqual(want.acct, [[link.a.ip4, 4, 4 * 84]]);
  await apply(replaceTables(carryState([policy(true)], before)), opts());
  const afterState = await readTable("inet", "palisade", opts());
  assert.deepEqual(summary(afterState), want);
  assert.ok(
    afterState.rules.some((r) => r.comment === "v2"),
    "the new version is in place",
  );
  const seen = afterState.sets.find((s) => s.name === "seen")!.elements[0]!;
  assert.ok(seen.expires !== undefined && seen.expires > 3500 && seen.expires <= 3600, `remaining ${seen.expires}`);
  // and counting goes on from there
  await lab.ping(client, link.b.ip4, { count: 1 });
  assert.deepEqual(summary(await readTable("inet", "palisade", opts())).counters, [["icmp_in", 5, 5 * 84]]);
});

test("without carrying, the same replace starts from zero (the test above can fail)", async () => {
  await apply(replaceTables([policy()]), opts());
  const st = summary(await readTable("inet", "palisade", opts()));
  assert.deepEqual(st.counters, [["icmp_in", 0, 0]]);
  assert.deepEqual(st.acct, []);
  assert.deepEqual(st.seen, []);
});
