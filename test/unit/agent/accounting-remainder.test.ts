// The collector's accounting rows from a kernel state (no kernel: readingOf on a
// RulesetState as the driver returns it): per-direction totals leave a remainder only
// for packets without an element; 0.0.0.0/0 is the src side of one slot; a table applied
// before per-direction totals keeps the old reading.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLog } from "../../../src/runtime/log.ts";
import { Collector } from "../../../src/agent/telemetry/collector.ts";
import { readingOf } from "../../../src/agent/telemetry/reading.ts";
import { Spool } from "../../../src/agent/telemetry/spool.ts";
import type { RulesetState } from "../../../src/engine/driver/index.ts";
import { FakeDriver } from "../../support/fake-driver.ts";

const T = { family: "inet" as const, table: "palisade" };
const counter = (name: string, packets: number, bytes: number) => ({ ...T, name, packets, bytes });
const set = (name: string, elements: [string, number, number][]) => ({
  ...T,
  kind: "set" as const,
  name,
  type: ["ipv4_addr"],
  flags: ["dynamic"],
  counter: true,
  elements: elements.map(([key, packets, bytes]) => ({ key, packets, bytes })),
});
const state = (o: Partial<RulesetState>): RulesetState => ({
  tables: [],
  chains: [],
  rules: [],
  sets: [],
  counters: [],
  quotas: [],
  ctHelpers: [],
  ...o,
});

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The rows of one collect() over `st` (a fresh collector: every value is new). */
async function rowsOf(st: RulesetState) {
  const dir = await mkdtemp(join(tmpdir(), "palisade-remainder-"));
  dirs.push(dir);
  const log = memoryLog("warn");
  const spool = await Spool.open(dir, { maxBytes: 1 << 20, maxBatches: 10 }, log);
  const c = await Collector.create({
    driver: new FakeDriver(),
    spool,
    epoch: "e",
    log,
    resumeFile: join(dir, "resume.json"),
    read: async () => readingOf(st),
  });
  const b = await c.collect();
  return new Map(
    (b?.accounting ?? []).map((r) => [
      `${r.table} ${r.ip}`,
      [r.srcPackets, r.srcBytes, r.dstPackets, r.dstBytes].map(Number),
    ]),
  );
}

describe("accounting rows from the kernel's objects", () => {
  it("per-direction totals: a reply is dst traffic, no remainder when every element exists", async () => {
    const rows = await rowsOf(
      state({
        counters: [counter("acct_lan_srctotal", 10, 1000), counter("acct_lan_dsttotal", 8, 4000)],
        sets: [set("acct_lan_src", [["10.0.0.1", 10, 1000]]), set("acct_lan_dst", [["10.0.0.1", 8, 4000]])],
      }),
    );
    assert.deepEqual([...rows], [["lan 10.0.0.1", [10, 1000, 8, 4000]]]);
  });

  it("per-direction totals: the remainder is what the missing elements carried, per direction", async () => {
    const rows = await rowsOf(
      state({
        counters: [counter("acct_lan_srctotal", 13, 1300), counter("acct_lan_dsttotal", 8, 4000)],
        sets: [set("acct_lan_src", [["10.0.0.1", 10, 1000]]), set("acct_lan_dst", [["10.0.0.1", 6, 3000]])],
      }),
    );
    assert.deepEqual(rows.get("lan "), [3, 300, 2, 1000]);
  });

  it("IPv6 per address and per aggregate (/64 from the sets' comment), exact with per-direction totals", async () => {
    const v6 = (name: string, elements: [string, number, number][], comment?: string) => ({
      ...set(name, elements),
      type: ["ipv6_addr"],
      ...(comment ? { comment } : {}),
    });
    const rows = await rowsOf(
      state({
        counters: [
          counter("acct_h_srctotal", 3, 300),
          counter("acct_h_dsttotal", 2, 200),
          counter("acct_n_srctotal", 7, 700),
          counter("acct_n_dsttotal", 0, 0),
        ],
        sets: [
          v6("acct_h_src", [["2001:db8:1::1", 3, 300]]),
          v6("acct_h_dst", [["2001:db8:1::1", 1, 100]]),
          v6(
            "acct_n_src",
            [
              ["2001:db8:1::", 5, 500],
              ["2001:db8:2::", 2, 200],
            ],
            "aggregate /64",
          ),
          v6("acct_n_dst", [], "aggregate /64"),
        ],
      }),
    );
    assert.deepEqual([...rows].sort(), [
      ["h ", [0, 0, 1, 100]],
      ["h 2001:db8:1::1", [3, 300, 1, 100]],
      ["n 2001:db8:1::/64", [5, 500, 0, 0]],
      ["n 2001:db8:2::/64", [2, 200, 0, 0]],
    ]);
  });

  it("0.0.0.0/0 is one slot, counted on the src side only", async () => {
    const rows = await rowsOf(state({ counters: [counter("acct_all_total", 5, 500)] }));
    assert.deepEqual([...rows], [["all ", [5, 500, 0, 0]]]);
  });

  it("a table applied before per-direction totals keeps the old reading until re-applied", async () => {
    const rows = await rowsOf(
      state({
        counters: [counter("acct_lan_total", 18, 5000)],
        sets: [set("acct_lan_src", [["10.0.0.1", 10, 1000]]), set("acct_lan_dst", [["10.0.0.1", 8, 4000]])],
      }),
    );
    assert.deepEqual(rows.get("lan "), [8, 4000, 10, 1000]);
  });

  it("table names with underscores and suffix-like parts split one way only", async () => {
    const rows = await rowsOf(
      state({
        counters: [
          counter("acct_a_src_total", 2, 200),
          counter("acct_a_srctotal", 1, 100),
          counter("acct_a_dsttotal", 0, 0),
        ],
        sets: [set("acct_a_src", [["10.0.0.1", 1, 100]])],
      }),
    );
    // acct_a_src_total is the one-slot total of table "a_src"; table "a" has no remainder.
    assert.deepEqual([...rows].sort(), [
      ["a 10.0.0.1", [1, 100, 0, 0]],
      ["a_src ", [2, 200, 0, 0]],
    ]);
  });
});

describe("growing quotas from the kernel's counters", () => {
  it("quota_<name>_grow_<mode> is a quota sample (grow, used by mode, limit 0), not a counter", () => {
    const r = readingOf(
      state({
        counters: [
          counter("quota_bt_grow_bytes", 3, 300),
          counter("quota_pk_grow_packets", 7, 700),
          counter("bt", 1, 10),
        ],
        quotas: [{ ...T, name: "q1", mode: "until", bytes: 1000, used: 250 }],
      }),
    );
    assert.deepEqual(
      r.quotas.map((q) => [q.name, q.mode, q.grow, q.limit, q.used]),
      [
        ["q1", "bytes", false, 1000, 250],
        ["bt", "bytes", true, 0, 300],
        ["pk", "packets", true, 0, 7],
      ],
    );
    assert.deepEqual([...r.counters.keys()], ["c\tbt"], "only the plain counter is a counter");
  });
});
