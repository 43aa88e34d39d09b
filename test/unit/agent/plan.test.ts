// The planner's text handling, without a kernel (the kernel tests prove the plans apply).
// The carry fallback is the engine's carryReplace (test/unit/engine/nft-carry.test.ts).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { declaredObjects, parseStatements } from "../../../src/agent/kernel/statements.ts";
import { incrementalPlan } from "../../../src/agent/kernel/plan.ts";
import { emptyState } from "../../../src/agent/kernel/read.ts";
import type { RulesetState } from "../../../src/engine/driver/index.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { compileNft, validatePolicy } from "../../../src/engine/index.ts";
import { fixtureDesired } from "../../support/agent-rulesets.ts";
import { palisadeListing, parseRuleset } from "../../../src/engine/driver/index.ts";
import { snapshotOfText } from "../../../src/agent/apply.ts";

const COMPILED = `add table inet palisade
delete table inet palisade
add table inet palisade
add counter inet palisade acct_lan_total
add quota inet palisade q1 { until 1000000 bytes ; }
add set inet palisade acct_lan_src { type ipv4_addr ; flags dynamic ; size 256 ; counter ; }
add set inet palisade allow { type ipv4_addr ; flags interval ; elements = { 10.0.0.0/8 } }
add chain inet palisade input { type filter hook input priority filter ; policy accept ; }
add rule inet palisade input counter name "acct_lan_total" comment "a { tricky ; comment"
add rule inet palisade input ip saddr 10.0.0.0/8 add @acct_lan_src { ip saddr counter } comment "after a block"
add table ip palisade_tee
delete table ip palisade_tee
`;

const LISTING = `table inet palisade {
	counter acct_lan_total {
		packets 5 bytes 500
	}

	quota q1 {
		1000000 bytes used 300 bytes
	}

	set acct_lan_src {
		type ipv4_addr
		size 256
		flags dynamic
		counter
		elements = { 10.0.0.1 counter packets 3 bytes 300 }
	}

	chain input {
		type filter hook input priority filter; policy accept;
		counter name "acct_lan_total"
	}
}
`;

function kernel(): RulesetState {
  const st = emptyState();
  st.tables.push({ family: "inet", name: "palisade" }, { family: "ip", name: "palisade_tee" });
  st.chains.push(
    { family: "inet", table: "palisade", name: "input" },
    { family: "inet", table: "palisade", name: "old_chain" },
  );
  st.counters.push(
    { family: "inet", table: "palisade", name: "acct_lan_total", packets: 7, bytes: 700 },
    { family: "inet", table: "palisade", name: "gone", packets: 1, bytes: 1 },
  );
  st.quotas.push({ family: "inet", table: "palisade", name: "q1", mode: "until", bytes: 1000000, used: 4242 });
  st.sets.push(
    {
      kind: "set",
      family: "inet",
      table: "palisade",
      name: "acct_lan_src",
      type: ["ipv4_addr"],
      flags: [],
      counter: true,
      elements: [{ key: "10.0.0.9", packets: 2, bytes: 200 }],
    },
    {
      kind: "set",
      family: "inet",
      table: "palisade",
      name: "allow",
      type: ["ipv4_addr"],
      flags: ["interval"],
      counter: false,
      elements: [{ key: "10.0.0.0/8" }],
    },
  );
  return st;
}

describe("agent plan: statements", () => {
  it("splits statements without breaking quoted strings, and sees the final set of tables", () => {
    const st = parseStatements(COMPILED);
    assert.equal(st.length, 12);
    assert.match(st[9]!.text, /^add rule .* \{ ip saddr counter \} comment "after a block"$/);
    assert.match(st[8]!.text, /tricky ; comment"$/);
    const d = declaredObjects(st);
    assert.deepEqual([...d.keys()], ["inet palisade"]); // the tee table is added and deleted
    const t = d.get("inet palisade")!;
    assert.deepEqual([...t.objects].sort(), [
      "chain input",
      "counter acct_lan_total",
      "quota q1",
      "set acct_lan_src",
      "set allow",
    ]);
    assert.deepEqual([...t.dynamic], ["set acct_lan_src"]);
  });
  it("reads a ct helper's type and protocol in both forms (6/17 read as tcp/udp)", () => {
    const text = `add table inet palisade { ct helper a { type "ftp" protocol tcp ; l3proto inet ; } ; }
add ct helper inet palisade b { type "tftp" protocol 17 ; l3proto inet ; }
add ct helper inet palisade c { l3proto inet ; }
add ct helper inet palisade d { type "ftp" protocol tcp ; }
add ct helper inet palisade e { type "ftp" protocol tcp ; l3proto ip ; }
`;
    const d = declaredObjects(parseStatements(text)).get("inet palisade")!;
    assert.deepEqual([...d.objects].sort(), [
      "ct helper a",
      "ct helper b",
      "ct helper c",
      "ct helper d",
      "ct helper e",
    ]);
    assert.deepEqual(
      [...d.helpers],
      [
        ["a", "ftp tcp inet"],
        ["b", "tftp udp inet"],
        // No l3proto: nft's default, the table's family.
        ["d", "ftp tcp inet"],
        ["e", "ftp tcp ip"],
      ],
    );
  });
  it("reads nft's listing (block) form too", () => {
    const d = declaredObjects(parseStatements(LISTING)).get("inet palisade")!;
    assert.deepEqual([...d.objects].sort(), ["chain input", "counter acct_lan_total", "quota q1", "set acct_lan_src"]);
    assert.deepEqual([...d.dynamic], ["set acct_lan_src"]);
  });
});

describe("agent plan: incremental", () => {
  it("keeps stateful objects: flushes rules, deletes what went away, rewrites static sets only", () => {
    const plan = incrementalPlan(COMPILED, kernel());
    const lines = plan.trim().split("\n");
    assert.equal(lines[0], "flush table inet palisade");
    assert.ok(lines.indexOf("delete table ip palisade_tee") < lines.indexOf("add table ip palisade_tee"));
    assert.ok(lines.includes("delete chain inet palisade old_chain"));
    assert.ok(lines.includes("delete counter inet palisade gone"));
    assert.ok(lines.includes("flush set inet palisade allow"));
    assert.ok(!lines.includes("flush set inet palisade acct_lan_src"), "accounting elements stay");
    assert.ok(!lines.includes("delete table inet palisade"), "the table is never deleted");
    assert.ok(
      !lines.some((l) => /^delete (counter|quota|set) inet palisade (acct_lan_total|q1|acct_lan_src)$/.test(l)),
    );
  });
  it("an empty desired text removes every Palisade table (rollback to nothing)", () => {
    assert.equal(incrementalPlan("", kernel()), "delete table inet palisade\ndelete table ip palisade_tee\n");
  });
});

describe("agent plan: from the compiled tables", () => {
  it("plans the same transaction as from the text, without lexing it", () => {
    const small = parse(readFileSync(join(import.meta.dirname, "../../../bench/fixtures/small.yaml"), "utf8"));
    const v = validatePolicy(small, { target: "nftables" });
    assert.ok(v.ok && v.policy);
    const c = compileNft(v.policy, { failsafe: { apiAddresses: ["192.0.2.10"], apiPort: 50051 } });
    assert.ok(c.ok);
    const fx = fixtureDesired({ lan: "10.9.0.0/24", extra: ["tcp dport 9 drop"] });
    for (const [text, tables] of [
      [c.text, c.tables],
      [fx.text, fx.tables],
    ] as const) {
      for (const k of [emptyState(), kernel()]) {
        const fromTables = incrementalPlan(text, k, [...tables]);
        assert.equal(fromTables, incrementalPlan(text, k));
        if (k.tables.length)
          assert.doesNotMatch(
            fromTables,
            /^delete table inet palisade$/m,
            "an existing table that stays is never deleted",
          );
      }
    }
  });
  it("drops only whole table-verb lines of kept tables, nothing inside a comment", () => {
    const tables = [{ table: { kind: "table", family: "inet", name: "palisade" }, chains: [], rules: [] }] as const;
    const k = kernel();
    // U+2028 and \r end lines for a regex's ^/$ with the m flag, not for nft or split("\n").
    const tricky = 'add rule inet palisade input accept comment "x\u2028flush table inet palisade\u2028y"';
    const text = `delete table inet palisade\nflush table inet palisade\r\n${tricky}\nflush table inet palisade\n\n\n`;
    const plan = incrementalPlan(text, k, [...tables] as never);
    const body = plan
      .split("\n")
      .filter((l) => !/^(flush|delete) (table|chain|counter|quota|set) /.test(l) || l.endsWith("\r"));
    assert.deepEqual(body, ["flush table inet palisade\r", tricky, ""]);
    assert.ok(plan.endsWith(`${tricky}\n`), "one newline at the end");
    assert.equal(
      incrementalPlan("add table inet palisade", k, [...tables] as never)
        .split("\n")
        .at(-2),
      "add table inet palisade",
    );
  });
  it("a table the text adds and deletes (a tee table the policy dropped) ends deleted", () => {
    const lines = incrementalPlan(COMPILED, kernel()).trim().split("\n");
    assert.equal(lines.filter((l) => l === "delete table ip palisade_tee").length, 2);
    assert.ok(lines.lastIndexOf("delete table ip palisade_tee") > lines.indexOf("add table ip palisade_tee"));
  });
});

describe("agent plan: ct helper objects", () => {
  const FTP = { type: "ftp", protocol: "tcp", dport: 21 } as const;
  const TFTP = { type: "tftp", protocol: "udp", dport: 69 } as const;
  const lan = "10.9.0.0/24";
  const v1 = fixtureDesired({ lan, ctHelpers: [FTP, TFTP] });
  const v2 = fixtureDesired({ lan, ctHelpers: [TFTP] });
  const v3 = fixtureDesired({ lan });
  /** The kernel after v1, as `nft list ruleset` prints it (nft 1.0.6, rules and sets left out). */
  const LISTED = `table inet palisade {
	ct helper helper_ftp_tcp {
		type "ftp" protocol tcp
		l3proto inet
	}

	ct helper helper_tftp_udp {
		type "tftp" protocol udp
		l3proto inet
	}

	counter udp_seen {
		packets 4 bytes 400
	}

	chain input {
		type filter hook input priority filter; policy accept;
	}

	chain ct_helper_prerouting {
		type filter hook prerouting priority -199; policy accept;
		tcp dport 21 ct helper set "helper_ftp_tcp"
		udp dport 69 ct helper set "helper_tftp_udp"
	}
}
`;
  const helpers = (plan: string) => plan.split("\n").filter((l) => / ct helper /.test(l) && !l.startsWith("add rule"));

  it("the kernel's ct helpers are read from nft's listing, its JSON and the known state alike", () => {
    const want = [
      ["helper_ftp_tcp", "ftp", "tcp"],
      ["helper_tftp_udp", "tftp", "udp"],
    ].map(([name, type, protocol]) => ({ family: "inet", table: "palisade", name, type, protocol, l3proto: "inet" }));
    assert.deepEqual(palisadeListing(LISTED).objects?.ctHelpers, want);
    assert.deepEqual(snapshotOfText(v1.text, v1.tables).objects?.ctHelpers, want);
    // `nft -j list table inet palisade` (nft 1.0.6), what readPalisade reads for a drift repair.
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6", json_schema_version: 1 } },
        { table: { family: "inet", name: "palisade", handle: 1 } },
        ...want.map((h, i) => ({ "ct helper": { ...h, handle: i + 1, l3proto: "inet" } })),
      ],
    });
    assert.deepEqual(parseRuleset(json).ctHelpers, want);
    // A host without /etc/protocols (a slim image without netbase): nft prints the numbers.
    const numeric = json
      .replaceAll('"protocol":"tcp"', '"protocol":6')
      .replaceAll('"protocol":"udp"', '"protocol":17')
      .replaceAll('"l3proto":"inet"', '"l3proto":1');
    assert.ok(numeric.includes('"protocol":6') && numeric.includes('"protocol":17'));
    assert.deepEqual(
      parseRuleset(numeric).ctHelpers.map(({ name, protocol }) => ({ name, protocol })),
      want.map(({ name, protocol }) => ({ name, protocol: protocol === "tcp" ? "6" : "17" })),
    );
    // The text path (a rollback's snapshot, a drift baseline) sees them declared in the table block.
    const declared = declaredObjects(parseStatements(LISTED)).get("inet palisade")!.objects;
    assert.ok(declared.has("ct helper helper_ftp_tcp") && declared.has("ct helper helper_tftp_udp"));
  });

  it("deletes the ct helpers the new version no longer declares, after the flush, and only those", () => {
    for (const kernel of [palisadeListing(LISTED).objects!, snapshotOfText(v1.text, v1.tables).objects!]) {
      for (const [v, gone] of [
        [v1, []],
        [v2, ["helper_ftp_tcp"]],
        [v3, ["helper_ftp_tcp", "helper_tftp_udp"]],
      ] as const) {
        for (const plan of [incrementalPlan(v.text, kernel, [...v.tables]), incrementalPlan(v.text, kernel)]) {
          const lines = plan.split("\n");
          assert.deepEqual(
            lines.filter((l) => l.startsWith("delete ct helper")),
            gone.map((n) => `delete ct helper inet palisade ${n}`),
          );
          // nft refuses to delete a helper a rule still uses: the rules go first (flush table),
          // and the new rules that follow name only the helpers the version declares.
          const flush = lines.indexOf("flush table inet palisade");
          const firstRule = lines.findIndex((l) => l.startsWith("add rule"));
          for (const n of gone) {
            const at = lines.indexOf(`delete ct helper inet palisade ${n}`);
            assert.ok(flush >= 0 && flush < at && at < firstRule, `${n}: flush, then delete, then the rules`);
            assert.ok(!lines.some((l) => l.startsWith("add rule") && l.includes(`"${n}"`)));
          }
          assert.equal(lines.includes("delete chain inet palisade ct_helper_prerouting"), v === v3);
        }
      }
    }
    assert.deepEqual(helpers(incrementalPlan(v1.text, palisadeListing(LISTED).objects!)), [
      'add table inet palisade { ct helper helper_ftp_tcp { type "ftp" protocol tcp ; l3proto inet ; } ; ct helper helper_tftp_udp { type "tftp" protocol udp ; l3proto inet ; } ; }',
    ]);
  });

  it("replaces a helper changed in place (same name, another type, protocol or l3proto): deleted after the flush, added again", () => {
    /** `nft -j list table inet palisade` with these helpers, as a drift repair reads it. */
    const json = (hs: { name: string; type: string; protocol: string | number; l3proto?: string }[]) =>
      parseRuleset(
        JSON.stringify({
          nftables: [
            { metainfo: { version: "1.0.6", json_schema_version: 1 } },
            { table: { family: "inet", name: "palisade", handle: 1 } },
            ...hs.map((h, i) => ({
              "ct helper": { family: "inet", table: "palisade", l3proto: "inet", ...h, handle: i + 1 },
            })),
          ],
        }),
      );
    const tftp = { name: "helper_tftp_udp", type: "tftp", protocol: "udp" };
    const replaced = ["delete ct helper inet palisade helper_ftp_tcp"];
    for (const [kernel, want, why] of [
      [palisadeListing(LISTED.replace('"ftp" protocol tcp', '"tftp" protocol udp')).objects!, replaced, "type"],
      [palisadeListing(LISTED.replace('"ftp" protocol tcp', '"ftp" protocol udp')).objects!, replaced, "protocol"],
      [json([{ name: "helper_ftp_tcp", type: "tftp", protocol: "udp" }, tftp]), replaced, "JSON: type"],
      [json([{ name: "helper_ftp_tcp", type: "ftp", protocol: 17 }, tftp]), replaced, "JSON: numeric protocol"],
      // Re-created for one layer 3 only (IPv6 connections would lose their helper).
      [palisadeListing(LISTED.replace("l3proto inet", "l3proto ip")).objects!, replaced, "l3proto"],
      [
        json([{ name: "helper_ftp_tcp", type: "ftp", protocol: "tcp", l3proto: "ip6" }, tftp]),
        replaced,
        "JSON: l3proto",
      ],
      // nft prints 6/17 where /etc/protocols is missing: the same helper, nothing to replace.
      [palisadeListing(LISTED.replace('"ftp" protocol tcp', '"ftp" protocol 6')).objects!, [], "listed as 6"],
      [
        json([
          { name: "helper_ftp_tcp", type: "ftp", protocol: 6 },
          { ...tftp, protocol: 17 },
        ]),
        [],
        "JSON: 6/17",
      ],
    ] as const) {
      for (const plan of [incrementalPlan(v1.text, kernel, [...v1.tables]), incrementalPlan(v1.text, kernel)]) {
        const lines = plan.split("\n");
        assert.deepEqual(
          lines.filter((l) => l.startsWith("delete ct helper")),
          want,
          why,
        );
        if (!want.length) continue;
        // A rule may still use it: the flush goes first; the text's table block adds it again.
        const at = lines.indexOf(want[0]!);
        const add = lines.findIndex((l) => l.startsWith("add table inet palisade {") && l.includes("helper_ftp_tcp {"));
        assert.ok(lines.indexOf("flush table inet palisade") < at && at < add, `${why}: flush, delete, add`);
      }
      // A version that no longer declares it deletes it once.
      assert.deepEqual(
        incrementalPlan(v2.text, kernel, [...v2.tables])
          .split("\n")
          .filter((l) => l.startsWith("delete ct helper")),
        ["delete ct helper inet palisade helper_ftp_tcp"],
        why,
      );
    }
    // The known state (the last confirmed version's model) carries the types too.
    const before = structuredClone([...v1.tables]);
    before[0]!.table.ctHelpers![0]!.type = "irc";
    assert.deepEqual(
      incrementalPlan(v1.text, snapshotOfText(v1.text, before).objects!, [...v1.tables])
        .split("\n")
        .filter((l) => l.startsWith("delete ct helper")),
      replaced,
    );
  });
});
