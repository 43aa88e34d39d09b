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
