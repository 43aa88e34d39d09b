// readForDrift's reads, on the in-memory FakeDriver: which driver calls it makes
// (test/kernel/agent-drift-read.test.ts proves the readings against nft).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAX_SET_READS, readForDrift } from "../../../src/agent/kernel/read.ts";
import { NftError } from "../../../src/engine/index.ts";
import { FakeDriver } from "../../support/fake-driver.ts";

const DYNAMIC = new Set(["inet palisade set acct"]);

async function kernel(staticSets: number) {
  const k = new FakeDriver();
  const lines = [
    "add table inet palisade",
    "add set inet palisade acct { type ipv4_addr ; flags dynamic ; size 16 ; }",
  ];
  for (let i = 0; i < staticSets; i++)
    lines.push(`add set inet palisade s${i} { type ipv4_addr ; elements = { 192.0.2.${i + 1} } ; }`);
  lines.push("add table inet palisade_other", "add set inet palisade_other t { type ipv4_addr ; size 16 ; }");
  await k.apply(`${lines.join("\n")}\n`);
  k.hit("inet", "palisade", "acct", "10.0.0.1", 1, 60);
  const calls: string[] = [];
  const p = (read?: { numericProtocols?: boolean }) => (read?.numericProtocols ? " -p" : "");
  const [readTable, readSet, terse] = [k.readTable.bind(k), k.readSet.bind(k), k.readWithoutElements.bind(k)];
  k.readWithoutElements = (read) => {
    calls.push(`without elements${p(read)}`);
    return terse(read);
  };
  k.readTable = (family, table, read) => {
    calls.push(`table ${table}${p(read)}`);
    return readTable(family, table, read);
  };
  k.readSet = (family, table, name, kind, read) => {
    calls.push(`set ${table} ${name}${p(read)}`);
    return readSet(family, table, name, kind, read);
  };
  return { k, calls };
}

const elements = (st: Awaited<ReturnType<typeof readForDrift>>, name: string) =>
  st.sets.find((s) => s.name === name)?.elements.map((e) => e.key);

describe("readForDrift", () => {
  it("one listing without elements, then each set drift compares, alone; never a kernel-filled set's", async () => {
    const { k, calls } = await kernel(2);
    const st = await readForDrift(k, { numericProtocols: true, dynamic: DYNAMIC });
    assert.deepEqual(calls, [
      "without elements -p",
      "set palisade s0 -p",
      "set palisade s1 -p",
      "set palisade_other t -p",
    ]);
    assert.deepEqual(elements(st, "acct"), []);
    assert.deepEqual(elements(st, "s0"), ["192.0.2.1"]);
    assert.deepEqual(elements(st, "s1"), ["192.0.2.2"]);
    assert.deepEqual(
      st.sets.map((s) => s.name),
      ["acct", "s0", "s1", "t"],
    );
  });

  it(`more than ${MAX_SET_READS} sets to compare: each table read whole instead`, async () => {
    const { k, calls } = await kernel(MAX_SET_READS);
    const st = await readForDrift(k, { dynamic: DYNAMIC });
    assert.deepEqual(calls, ["without elements", "table palisade", "table palisade_other"]);
    assert.deepEqual(elements(st, `s${MAX_SET_READS - 1}`), [`192.0.2.${MAX_SET_READS}`]);
  });

  it("a set gone between the two reads is read as missing; any other error fails the reading", async () => {
    const { k } = await kernel(1);
    const readSet = k.readSet.bind(k);
    k.readSet = (family, table, name, kind, read) =>
      name === "s0"
        ? Promise.reject(new NftError("not_found", "not found: nft list set"))
        : readSet(family, table, name, kind, read);
    const st = await readForDrift(k, { dynamic: DYNAMIC });
    assert.deepEqual(
      st.sets.map((s) => s.name),
      ["acct", "t"],
    );
    k.readSet = () => Promise.reject(new NftError("nft_failed", "boom"));
    await assert.rejects(readForDrift(k, { dynamic: DYNAMIC }), /boom/);
  });
});
