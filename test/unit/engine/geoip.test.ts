// geoip on nftables and the country data: the compiler's per-country sets and rules, the
// CSV parser's whole-file refusals (with the line), merging and deltas, the agent's sync text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { geoip } from "../../../src/engine/index.ts";

const doc = (rules: unknown[], extra: object = {}) =>
  ({ chains: { input: { hook: "input", rules } }, ...extra }) as PolicyInput;

test("geoip: one set per country and family, one rule per country (any action), negation is an AND of !=", () => {
  const r = renderNft(
    Policy.parse(
      doc(
        [
          { match: { xt: { geoip: { source: ["CN", "RU"] } } }, action: { type: "mark", value: 1 } },
          { match: { xt: { geoip: { source: ["CN", "RU"] } } }, action: { type: "counter", name: "c" } },
          { match: { xt: { geoip: { destination: ["DE"], invert: true } } }, action: "drop" },
        ],
        { counters: { c: {} } },
      ),
    ),
  );
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const lines = r.text.split("\n");
  assert.deepEqual(
    lines.filter((l) => l.startsWith("add set")).map((l) => l.split(" ")[4]),
    ["geo_v4_CN", "geo_v6_CN", "geo_v4_RU", "geo_v6_RU", "geo_v4_DE", "geo_v6_DE"],
  );
  assert.ok(lines.includes("add set inet palisade geo_v4_CN { type ipv4_addr ; flags interval,timeout ; }"));
  const rules = lines.filter((l) => l.startsWith("add rule inet palisade input"));
  assert.ok(
    rules.some((l) => l.includes("ip saddr @geo_v4_RU counter name")),
    rules.join("\n"),
  );
  assert.ok(rules.some((l) => l.includes("ip6 saddr @geo_v6_CN meta mark set")));
  assert.ok(rules.some((l) => l.includes("ip daddr != @geo_v4_DE drop")));
  assert.ok(rules.some((l) => l.includes("ip6 daddr != @geo_v6_DE drop")));
  assert.equal(rules.filter((l) => l.includes("@geo_")).length, 4 + 4 + 2);
});

test("geoip next to a mixed address list: the product is not disjoint, a non-verdict is refused", () => {
  const r = renderNft(
    Policy.parse(
      doc(
        [
          {
            match: { saddr: ["10.0.0.0/8", "@s"], xt: { geoip: { destination: ["CN", "RU"] } } },
            action: { type: "counter", name: "c" },
          },
        ],
        {
          sets: { s: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
          counters: { c: {} },
        },
      ),
    ),
  );
  assert.ok(!r.ok);
  assert.ok(
    r.errors.some((e) => e.code === "nft_mixed_address_list"),
    JSON.stringify(r.errors),
  );
});

test("a policy set named like a country set is refused", () => {
  const r = renderNft(
    Policy.parse(
      doc([{ match: { xt: { geoip: { source: ["CN"] } } }, action: "drop" }], {
        sets: { geo_v4_CN: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
      }),
    ),
  );
  assert.ok(!r.ok);
  assert.ok(
    r.errors.some((e) => e.code === "nft_name_clash"),
    JSON.stringify(r.errors),
  );
});

test("CSV: merged per country and family, canonical text, header and comments skipped", () => {
  const r = geoip.parseGeoCsv(
    [
      "start,end,country",
      "# comment",
      "1.0.0.0,1.0.0.255,au",
      "1.0.1.0,1.0.1.255,AU", // adjacent: merged
      "1.0.0.10,1.0.0.20,AU", // inside: merged
      '"2.0.0.0","2.0.0.0","FR"',
      "2001:DB8::,2001:db8:0:0:0:0:0:ffff,DE",
      "::ffff:1.2.3.4,::ffff:1.2.3.5,DE",
      "",
    ].join("\n"),
  );
  assert.ok(r.ok, JSON.stringify(!r.ok && r.error));
  assert.equal(r.value.ranges, 6);
  assert.deepEqual(r.value.countries.get("AU"), { ipv4: ["1.0.0.0-1.0.1.255"], ipv6: [] });
  assert.deepEqual(r.value.countries.get("FR"), { ipv4: ["2.0.0.0"], ipv6: [] });
  assert.deepEqual(r.value.countries.get("DE"), {
    ipv4: [],
    ipv6: ["::ffff:102:304-::ffff:102:305", "2001:db8::-2001:db8::ffff"],
  });
});

test("CSV: a bad line refuses the whole file, naming the line", () => {
  const bad: [string, string, number][] = [
    ["1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.0.255,AU", "geoip_reversed", 2],
    ["1.0.0.0,1.0.0.255,AU\n1.0.1.0,2001:db8::1,AU", "geoip_family_mismatch", 2],
    ["1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.9,A1", "geoip_bad_country", 2],
    ["1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.256,AU", "geoip_bad_address", 2],
    ["1.0.0.0,1.0.0.255,AU\n\n1.0.1.0,1.0.1.9", "geoip_bad_line", 3],
    ["# nothing\n", "geoip_empty", 2],
  ];
  for (const [text, code, line] of bad) {
    const r = geoip.parseGeoCsv(text);
    assert.ok(!r.ok, text);
    assert.equal(r.error.code, code, text);
    assert.equal(r.error.line, line, text);
    if (code !== "geoip_empty") assert.match(r.error.message, new RegExp(`^line ${line}`));
  }
});

test("CSV: where two countries' ranges overlap the later line wins (nested, crossing, the same range twice)", () => {
  const r = geoip.parseGeoCsv(
    [
      "2.58.196.0,2.58.197.255,DE",
      "2.58.197.15,2.58.197.15,BE", // a geofeed /32 inside DE's whois block
      "2.58.197.16,2.58.197.255,DE",
      "10.0.0.0,10.0.0.255,FR",
      "10.0.0.0,10.0.0.255,IT", // the same range again: the later line
      "2001:db8::,2001:db8::ffff,DE",
      "2001:db8::10,2001:db8::1f,AT",
      "1.0.0.0,1.0.0.255,AU",
      "1.0.0.128,1.0.1.9,NZ", // crosses AU's end
    ].join("\n"),
  );
  assert.ok(r.ok, JSON.stringify(!r.ok && r.error));
  assert.deepEqual(r.value.countries.get("DE"), {
    ipv4: ["2.58.196.0-2.58.197.14", "2.58.197.16-2.58.197.255"],
    ipv6: ["2001:db8::-2001:db8::f", "2001:db8::20-2001:db8::ffff"],
  });
  assert.deepEqual(r.value.countries.get("BE"), { ipv4: ["2.58.197.15"], ipv6: [] });
  assert.deepEqual(r.value.countries.get("AT"), { ipv4: [], ipv6: ["2001:db8::10-2001:db8::1f"] });
  assert.deepEqual(r.value.countries.get("IT"), { ipv4: ["10.0.0.0-10.0.0.255"], ipv6: [] });
  assert.equal(r.value.countries.get("FR"), undefined);
  assert.deepEqual(r.value.countries.get("AU")?.ipv4, ["1.0.0.0-1.0.0.127"]);
  assert.deepEqual(r.value.countries.get("NZ")?.ipv4, ["1.0.0.128-1.0.1.9"]);
});

test("deltas: difference of canonical lists; folded deltas equal the direct one", () => {
  const a = ["1.0.0.0-1.0.0.255", "2.0.0.0"];
  const b = ["1.0.0.0-1.0.1.255", "2.0.0.0", "3.0.0.0-3.0.0.9"];
  const c = ["2.0.0.0", "3.0.0.0-3.0.0.9"];
  assert.deepEqual(geoip.intervalDelta(a, b), {
    add: ["1.0.0.0-1.0.1.255", "3.0.0.0-3.0.0.9"],
    del: ["1.0.0.0-1.0.0.255"],
  });
  const folded = geoip.foldDelta(geoip.intervalDelta(a, b), geoip.intervalDelta(b, c));
  const direct = geoip.intervalDelta(a, c);
  assert.deepEqual(
    { add: folded.add.sort(), del: folded.del.sort() },
    { add: direct.add.sort(), del: direct.del.sort() },
  );
});

test("sync text: full = flush + add, delta = delete + add, in one text", () => {
  const t = geoip.geoSyncText("inet", "palisade", [
    { family: "ipv4", country: "CN", full: true, add: ["1.0.0.0-1.0.0.255"], del: [] },
    { family: "ipv6", country: "RU", full: false, add: ["2001:db8::1"], del: ["2001:db8::-2001:db8::ff"] },
  ]);
  assert.equal(
    t,
    [
      "flush set inet palisade geo_v4_CN",
      "add element inet palisade geo_v4_CN { 1.0.0.0-1.0.0.255 }",
      "delete element inet palisade geo_v6_RU { 2001:db8::-2001:db8::ff }",
      "add element inet palisade geo_v6_RU { 2001:db8::1 }",
      "",
    ].join("\n"),
  );
  assert.deepEqual(geoip.geoOfSet("geo_v6_RU"), { family: "ipv6", country: "RU" });
  assert.equal(geoip.geoOfSet("geo_v6_ru"), undefined);
});

test("geoip: policyCountries finds mark forwards' matches too; policyCountryFamilies narrows by the match's family only", () => {
  const p = Policy.parse(
    doc(
      [
        { match: { family: "ipv4", xt: { geoip: { source: ["RU"] } } }, action: "drop" },
        { match: { xt: { geoip: { destination: ["DE"], invert: true } } }, action: "drop" },
        { match: { family: "ipv6", xt: { geoip: { source: ["DE"] } } }, action: "accept" },
      ],
      {
        forwarding: {
          markForwards: [
            {
              mark: 5,
              match: { xt: { geoip: { source: ["CN"], invert: true } } },
              backends: [{ address: "192.0.2.1" }],
            },
            {
              mark: 6,
              match: { family: "ipv6", xt: { geoip: { source: ["JP"] } } },
              backends: [{ address: "2001:db8::1" }],
            },
          ],
        },
      },
    ),
  );
  // The mark forward compiles to a lookup in CN's set: it must be a country the policy tests.
  const r = renderNft(p);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(r.text, /ip6 saddr != @geo_v6_CN meta mark set 0x00000005/);
  assert.deepEqual(geoip.policyCountries(p), ["CN", "DE", "JP", "RU"]);
  assert.deepEqual(
    [...geoip.policyCountryFamilies(p)],
    [
      ["CN", ["ipv4", "ipv6"]],
      ["DE", ["ipv4", "ipv6"]],
      ["JP", ["ipv6"]],
      ["RU", ["ipv4"]],
    ],
  );
  assert.deepEqual(
    [
      ...geoip.mergeCountryFamilies([
        new Map([["RU", ["ipv4"] as const]]),
        new Map([
          ["RU", ["ipv6"] as const],
          ["AT", ["ipv4"] as const],
        ]),
      ]),
    ],
    [
      ["AT", ["ipv4"]],
      ["RU", ["ipv4", "ipv6"]],
    ],
  );
});
