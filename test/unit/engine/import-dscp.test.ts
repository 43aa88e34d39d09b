// `-m dscp` (libxt_dscp): --dscp N / --dscp-class NAME, negatable, both families. Imported as
// match key `dscp`, rendered as nft `ip dscp` / `ip6 dscp` (per family) and iptables -m dscp.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";
import type { Rule } from "../../../src/engine/policy/index.ts";
import { ipv4Rules } from "./import-ipv6-pass.ts";

/** The one IPv4 rule an iptables command line becomes. */
function rule(line: string): Rule {
  const r = importPolicy("iptables", line);
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors));
  const rules = ipv4Rules(r.policy?.chains.input?.rules);
  assert.equal(rules.length, 1);
  return rules[0]!;
}

const err = (line: string) => importPolicy("iptables", line).errors;

test("-m dscp: --dscp in hex, decimal and octal (strtoul base 0, as iptables), --dscp-class in any case, !", () => {
  assert.deepEqual(rule("iptables -A INPUT -m dscp --dscp 0x2e -j DROP").match, { dscp: 46 });
  assert.deepEqual(rule("iptables -A INPUT -m dscp --dscp 10 -j DROP").match, { dscp: 10 });
  // iptables -m dscp --dscp 010 saves as 0x08.
  assert.deepEqual(rule("iptables -A INPUT -m dscp --dscp 010 -j DROP").match, { dscp: 8 });
  assert.deepEqual(rule("iptables -A INPUT -m dscp --dscp-class af41 -j DROP").match, { dscp: 34 });
  assert.deepEqual(rule("iptables -A INPUT -m dscp ! --dscp-class EF -j DROP").match, { dscp: { not: 46 } });
  assert.deepEqual(rule("iptables -A INPUT -m dscp ! --dscp 0 -j DROP").match, { dscp: { not: 0 } });
});

test("-m dscp: out of range, negative, garbage and inherited class names, both options, none: errors naming the line and value", () => {
  for (const [opt, v, re] of [
    ["--dscp", "64", /line 1: --dscp 64 is not a DSCP value \(0-63\)/],
    ["--dscp", "-1", /line 1: --dscp -1 is not a DSCP value/],
    ["--dscp", "0x40", /--dscp 0x40 is not a DSCP value/],
    ["--dscp", "09", /--dscp 09 is not a DSCP value/],
    ["--dscp", "ef", /--dscp ef is not a DSCP value/],
    ["--dscp-class", "XX", /line 1: --dscp-class XX is not a DSCP class/],
    ["--dscp-class", "constructor", /--dscp-class constructor is not a DSCP class/],
    ["--dscp-class", "__proto__", /--dscp-class __proto__ is not a DSCP class/],
    ["--dscp-class", "AF44", /--dscp-class AF44 is not a DSCP class/],
  ] as const) {
    const e = err(`iptables -A INPUT -m dscp ${opt} ${v} -j DROP`);
    assert.equal(e.length, 1, `${opt} ${v}`);
    assert.equal(e[0]!.code, "import_invalid_value");
    assert.match(e[0]!.message, re);
  }
  assert.match(err("iptables -A INPUT -m dscp --dscp 5 --dscp-class EF -j DROP")[0]!.message, /exactly one of --dscp/);
  assert.match(err("iptables -A INPUT -m dscp -j DROP")[0]!.message, /exactly one of --dscp/);
  // The DSCP target reads its value the same way.
  assert.deepEqual(
    ipv4Rules(
      importPolicy("iptables", "iptables -t mangle -A PREROUTING -j DSCP --set-dscp 010").policy?.chains
        .mangle_prerouting?.rules,
    )[0]?.action,
    { type: "tos", value: 8 << 2, mask: 0xfc },
  );
  assert.match(
    err("iptables -t mangle -A PREROUTING -j DSCP --set-dscp-class toString")[0]!.message,
    /--set-dscp-class toString is not a DSCP class/,
  );
});

test("dscp renders per family: nft ip dscp / ip6 dscp (!= when negated), iptables and ip6tables -m dscp", () => {
  const policy = {
    chains: {
      input: {
        hook: "input" as const,
        rules: [
          { match: { dscp: 46 }, action: { type: "drop" as const } },
          { match: { dscp: { not: 8 } }, action: { type: "accept" as const } },
        ],
      },
    },
  };
  const v = validatePolicy(policy);
  assert.deepEqual(v.errors, []);
  const nft = renderNft(v.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  assert.match(nft.text, /ip dscp 46 .*drop/);
  assert.match(nft.text, /ip6 dscp 46 .*drop/);
  assert.match(nft.text, /ip dscp != 8 .*accept/);
  assert.match(nft.text, /ip6 dscp != 8 .*accept/);
  const ipt = renderIptables(v.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  for (const text of [ipt.text, ipt.text6]) {
    assert.match(text, /-m dscp --dscp 0x2e -j DROP/);
    assert.match(text, /-m dscp ! --dscp 0x08 -j ACCEPT/);
  }
  // Out of range in the policy itself: the schema refuses it.
  const bad = validatePolicy({
    chains: { input: { hook: "input", rules: [{ match: { dscp: 64 }, action: { type: "drop" } }] } },
  });
  assert.ok(!bad.ok);
  assert.ok(
    bad.errors.some((e) => e.path.includes("dscp")),
    JSON.stringify(bad.errors),
  );
});

test("iptables-save with -m dscp round-trips through the iptables render", () => {
  const save = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m dscp --dscp 0x2e -j DROP\nCOMMIT\n";
  const r = importPolicy("iptables-save", save);
  assert.deepEqual(r.errors, []);
  const ipt = renderIptables(r.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  assert.match(ipt.text, /-p udp -m dscp --dscp 0x2e -j DROP/);
});
