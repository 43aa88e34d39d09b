// The driver against real nftables in a throwaway namespace: check, atomic apply,
// replace (with and without an existing table), named sets really emptied, set-full
// errors, and foreign tables never touched.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import {
  apply,
  check,
  listPalisadeTables,
  readSet,
  readTable,
  NftError,
  snapshot,
  restore,
  readCounter,
} from "../../src/engine/driver/index.ts";
import {
  replaceChain,
  replaceTables,
  serialize,
  Transaction,
  type TableDefinition,
} from "../../src/engine/nft/index.ts";

const lab = createLab();
let ns = "";
const opts = () => ({ netns: ns });
const FOREIGN = `table inet other {
\tset keep { type ipv4_addr; elements = { 192.0.2.99 } }
\tchain input { type filter hook input priority 10; policy accept;
\t\tip saddr @keep counter accept
\t}
}
table ip filter {
\tchain INPUT { type filter hook input priority 0; policy accept; }
}
`;
let foreignBefore = "";

async function foreignNow(): Promise<string> {
  return (
    (await lab.nft(ns, ["list", "table", "inet", "other"])).stdout +
    (await lab.nft(ns, ["list", "table", "ip", "filter"])).stdout
  );
}

async function palisadeText(): Promise<string> {
  const r = await lab.nft(ns, ["list", "table", "inet", "palisade"], undefined, { allowFailure: true });
  return r.code === 0 ? r.stdout : "";
}

const T = { family: "inet" as const, table: "palisade" };
function def(
  elements: string[],
  opts: { size?: number; policy?: "accept" | "drop"; extraRule?: string } = {},
): TableDefinition {
  return {
    table: { kind: "table", family: "inet", name: "palisade" },
    counters: [{ kind: "counter", ...T, name: "hits" }],
    sets: [
      {
        kind: "set",
        ...T,
        name: "bans",
        type: "ipv4_addr",
        ...(opts.size ? { size: opts.size } : {}),
        elements: elements.map((key) => ({ key })),
      },
    ],
    chains: [
      {
        kind: "chain",
        ...T,
        name: "input",
        type: "filter",
        hook: "input",
        priority: 0,
        policy: opts.policy ?? "accept",
      },
    ],
    rules: [
      { kind: "rule", ...T, chain: "input", body: "ip saddr @bans drop", comment: "bans" },
      { kind: "rule", ...T, chain: "input", body: 'counter name "hits"' },
      ...(opts.extraRule ? [{ kind: "rule" as const, ...T, chain: "input", body: opts.extraRule }] : []),
    ],
  };
}

before(async () => {
  ns = await lab.addNamespace();
  await lab.nft(ns, ["-f", "-"], FOREIGN);
  foreignBefore = await foreignNow();
});
after(() => lab.cleanup());

test("check rejects broken text with nft's message and location, and applies nothing", async () => {
  const text =
    "add table inet palisade\nadd chain inet palisade c { type filter hook input priority 0 ; }\nadd rule inet palisade c ip saddr 192.0.2.1 frobnicate\n";
  await assert.rejects(check(text, opts()), (e: unknown) => {
    assert.ok(e instanceof NftError);
    assert.equal(e.code, "nft_rejected");
    assert.match(e.kernelMessage ?? "", /syntax error/);
    assert.equal(e.location?.line, 3);
    assert.match(e.message, /line 3/);
    return true;
  });
  assert.deepEqual(await listPalisadeTables(opts()), []);
});

test("check passes valid text without installing it", async () => {
  const r = await check(replaceTables([def(["192.0.2.1"])]), opts());
  assert.deepEqual(
    r.tables.map((t) => t.name),
    ["palisade"],
  );
  assert.deepEqual(await listPalisadeTables(opts()), []);
});

test("replace works when the table does not exist yet", async () => {
  await apply(replaceTables([def(["192.0.2.1", "192.0.2.2"])]), opts());
  const s = await readSet("inet", "palisade", "bans", opts());
  assert.deepEqual(s.elements.map((e) => e.key).sort(), ["192.0.2.1", "192.0.2.2"]);
});

test("replace works when the table exists and really empties named sets", async () => {
  await apply(replaceTables([def([])]), opts());
  const s = await readSet("inet", "palisade", "bans", opts());
  assert.deepEqual(s.elements, []);
});

test("fact: `flush table` leaves named sets full (why replace deletes the table)", async () => {
  await apply(replaceTables([def(["192.0.2.7"])]), opts());
  await apply("flush table inet palisade\n", opts());
  const s = await readSet("inet", "palisade", "bans", opts());
  assert.deepEqual(
    s.elements.map((e) => e.key),
    ["192.0.2.7"],
  );
});

test("apply is atomic: a failing second half leaves the existing table exactly as it was", async () => {
  await apply(replaceTables([def(["192.0.2.5"])]), opts());
  const before = await palisadeText();
  const tx = replaceTables([def(["192.0.2.6"], { policy: "drop" })]);
  // Second half: a rule jumping to a chain that does not exist; the kernel refuses it.
  tx.add({ kind: "table", family: "inet", name: "palisade_second" });
  tx.add({ kind: "rule", family: "inet", table: "palisade", chain: "input", body: "jump nowhere" });
  await assert.rejects(apply(tx, opts()), (e: unknown) => e instanceof NftError && e.code === "nft_rejected");
  assert.equal(await palisadeText(), before);
  assert.deepEqual(
    (await listPalisadeTables(opts())).map((t) => t.name),
    ["palisade"],
  );
});

test("a set at its size limit gives set_full with the set's name and size, not 'Too many open files'", async () => {
  await assert.rejects(
    apply(replaceTables([def(["192.0.2.1", "192.0.2.2", "192.0.2.3"], { size: 2 })]), opts()),
    (e: unknown) => {
      assert.ok(e instanceof NftError);
      assert.equal(e.code, "set_full");
      assert.equal(e.set, "bans");
      assert.equal(e.size, 2);
      assert.match(e.message, /^set bans is full \(size 2\)/);
      assert.match(e.kernelMessage ?? "", /Too many open files/);
      return true;
    },
  );
  // Incremental: the size is not in the text, so the driver reads it from the kernel.
  await apply(replaceTables([def(["192.0.2.1", "192.0.2.2"], { size: 2 })]), opts());
  const add = new Transaction().add({ kind: "element", ...T, set: "bans", elements: [{ key: "192.0.2.3" }] });
  await assert.rejects(
    apply(add, opts()),
    (e: unknown) =>
      e instanceof NftError && e.code === "set_full" && e.size === 2 && /set bans is full \(size 2\)/.test(e.message),
  );
  // check (-c) reaches the kernel too, so it reports the same.
  await assert.rejects(check(add, opts()), (e: unknown) => e instanceof NftError && e.code === "set_full");
});

test("incremental: one chain rewritten and elements added/removed, other state kept", async () => {
  await apply(replaceTables([def(["192.0.2.1"])]), opts());
  const chain = def([]).chains[0]!;
  const tx = replaceChain({ ...chain, policy: "accept" }, [
    {
      kind: "rule",
      ...T,
      chain: "input",
      body: "tcp dport { 22, 443 } ct state { new, untracked } accept",
      comment: "ssh",
    },
  ]);
  tx.add({ kind: "element", ...T, set: "bans", elements: [{ key: "192.0.2.9" }] });
  tx.delete({ kind: "element", ...T, set: "bans", elements: [{ key: "192.0.2.1" }] });
  await apply(tx, opts());
  const text = await palisadeText();
  assert.match(text, /tcp dport \{ 22, 443 \} ct state \{ new, untracked \} accept comment "ssh"/);
  assert.doesNotMatch(text, /@bans drop/);
  assert.deepEqual(
    (await readSet("inet", "palisade", "bans", opts())).elements.map((e) => e.key),
    ["192.0.2.9"],
  );
});

test("snapshot and restore bring back Palisade's tables, counters included", async () => {
  await apply(replaceTables([def(["192.0.2.1"])]), opts());
  // Real packets over the namespace's loopback make the named counter non-zero.
  const p = await lab.ping(ns, "127.0.0.1", { count: 3 });
  assert.equal(p.received, 3);
  const counted = await readCounter("inet", "palisade", "hits", opts());
  assert.ok(counted.packets >= 3, `counted ${counted.packets}`);
  const snap = await snapshot(opts());
  assert.deepEqual(
    snap.tables.map((t) => `${t.family} ${t.name}`),
    ["inet palisade"],
  );
  const extra: TableDefinition = {
    table: { kind: "table", family: "ip", name: "palisade_extra" },
    chains: [],
    rules: [],
  };
  await apply(replaceTables([def(["198.51.100.1"]), extra]), opts());
  assert.equal((await readCounter("inet", "palisade", "hits", opts())).packets, 0);
  await restore(snap, opts());
  assert.equal(await palisadeText(), snap.text);
  assert.deepEqual(
    (await listPalisadeTables(opts())).map((t) => t.name),
    ["palisade"],
  );
  const back = await readCounter("inet", "palisade", "hits", opts());
  assert.deepEqual([back.packets, back.bytes], [counted.packets, counted.bytes]);
});

test("a snapshot keeps only Palisade's tables and lists the same object names as the JSON read", async () => {
  const quoted: TableDefinition = {
    table: { kind: "table", family: "ip", name: "palisade_x" },
    counters: [{ kind: "counter", family: "ip", table: "palisade_x", name: "c2" }],
    quotas: [{ kind: "quota", family: "ip", table: "palisade_x", name: "q1", mode: "over", bytes: 1000 }],
    sets: [
      {
        kind: "map",
        family: "ip",
        table: "palisade_x",
        name: "m1",
        type: "ipv4_addr",
        map: "verdict",
        elements: [{ key: "192.0.2.1", value: "drop" }],
      },
    ],
    chains: [{ kind: "chain", family: "ip", table: "palisade_x", name: "helper" }],
    rules: [],
  };
  const empty: TableDefinition = {
    table: { kind: "table", family: "netdev", name: "palisade_empty" },
    chains: [],
    rules: [],
  };
  await apply(replaceTables([def(["192.0.2.1"]), quoted, empty]), opts());
  const snap = await snapshot(opts());
  assert.deepEqual(
    snap.tables.map((t) => `${t.family} ${t.name}`),
    ["inet palisade", "ip palisade_x", "netdev palisade_empty"],
  );
  assert.doesNotMatch(snap.text, /table inet other|table ip filter/);
  assert.ok(snap.objects, "names read with certainty");
  const names = (xs: { family: string; table: string; name: string; kind?: string }[]) =>
    xs.map((x) => `${x.kind ?? ""} ${x.family} ${x.table} ${x.name}`).sort();
  const json = { chains: [] as string[], sets: [] as string[], counters: [] as string[], quotas: [] as string[] };
  for (const t of snap.tables) {
    const st = await readTable(t.family, t.name, opts());
    json.chains.push(...names(st.chains));
    json.sets.push(...names(st.sets));
    json.counters.push(...names(st.counters));
    json.quotas.push(...names(st.quotas));
  }
  assert.deepEqual(names(snap.objects.chains), json.chains.sort());
  assert.deepEqual(names(snap.objects.sets), json.sets.sort());
  assert.deepEqual(names(snap.objects.counters), json.counters.sort());
  assert.deepEqual(names(snap.objects.quotas), json.quotas.sort());
  assert.equal(json.chains.length + json.sets.length + json.counters.length + json.quotas.length, 7);
  await restore(snap, opts());
  assert.equal((await snapshot(opts())).text, snap.text);
  await apply(replaceTables([def(["192.0.2.1"])]), opts());
});

test("foreign tables are refused before nft runs and never changed by anything above", async () => {
  for (const text of [
    "flush ruleset\n",
    "delete table inet other\n",
    "add rule ip filter INPUT drop\n",
    "add table inet palisade\nflush table inet other\n",
  ]) {
    await assert.rejects(
      apply(text, opts()),
      (e: unknown) => e instanceof NftError && (e.code === "foreign_table" || e.code === "forbidden_command"),
    );
  }
  assert.throws(() => serialize(new Transaction().delete({ kind: "table", family: "inet", name: "other" })));
  assert.equal(await foreignNow(), foreignBefore);
  const tables = (await lab.nft(ns, ["list", "tables"])).stdout;
  assert.match(tables, /table inet other/);
  assert.match(tables, /table ip filter/);
});

test("maps read back with keys and values in nft syntax", async () => {
  const d: TableDefinition = {
    table: { kind: "table", family: "inet", name: "palisade" },
    sets: [
      {
        kind: "map",
        ...T,
        name: "dispatch",
        type: ["ipv4_addr", "inet_service"],
        map: "verdict",
        elements: [
          { key: "192.0.2.1 . 22", value: "jump ssh" },
          { key: "192.0.2.2 . 80", value: "drop" },
        ],
      },
      {
        kind: "map",
        ...T,
        name: "marks",
        type: "ipv4_addr",
        map: "mark",
        flags: ["interval"],
        elements: [{ key: "198.51.100.0/24", value: "0x10" }],
      },
    ],
    chains: [
      { kind: "chain", ...T, name: "ssh" },
      { kind: "chain", ...T, name: "input", type: "filter", hook: "input", priority: 0 },
    ],
    rules: [
      { kind: "rule", ...T, chain: "input", body: "ip saddr . tcp dport vmap @dispatch" },
      { kind: "rule", ...T, chain: "input", body: "meta mark set ip saddr map @marks" },
    ],
  };
  await apply(replaceTables([d]), opts());
  const m = await readSet("inet", "palisade", "dispatch", { ...opts(), kind: "map" });
  assert.equal(m.kind, "map");
  assert.equal(m.map, "verdict");
  assert.deepEqual(m.type, ["ipv4_addr", "inet_service"]);
  assert.deepEqual(m.elements.map((e) => [e.key, e.value]).sort(), [
    ["192.0.2.1 . 22", "jump ssh"],
    ["192.0.2.2 . 80", "drop"],
  ]);
  const marks = await readSet("inet", "palisade", "marks", { ...opts(), kind: "map" });
  assert.deepEqual(
    marks.elements.map((e) => [e.key, e.value]),
    [["198.51.100.0/24", "16"]],
  );
});
