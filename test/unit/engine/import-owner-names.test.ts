// -m owner --uid-owner/--gid-owner with user and group names: iptables resolves a name with
// getpwnam/getgrnam on the host that loads the rule, and nft resolves `meta skuid "name"` the
// same way (nft 1.0.6, measured: "Error: User does not exist" for an unknown one). The policy
// keeps the name; both renders hand it to the loading host.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { Policy } from "../../../src/engine/policy/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";
import { ipv4Rules } from "./import-ipv6-pass.ts";
import { ownerRefusal, parseNftStderr } from "../../../src/engine/driver/nft.ts";

/** The one rule an iptables line becomes (after the IPv6 pass rule an IPv4-only input gets). */
function rule(line: string, chain: string) {
  const r = importPolicy("iptables", line);
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors));
  let rules = r.policy?.chains[chain]?.rules;
  if (rules && rules.length === 2) rules = ipv4Rules(rules);
  assert.ok(rules && rules.length === 1);
  return rules[0]!;
}

test("owner names import as names, with ! and beside ids and ranges", () => {
  assert.deepEqual(rule("iptables -A OUTPUT -m owner --uid-owner www-data -j ACCEPT", "output").match, {
    skuid: "www-data",
  });
  assert.deepEqual(rule("iptables -A OUTPUT -m owner ! --gid-owner debian-tor -j DROP", "output").match, {
    skgid: { not: "debian-tor" },
  });
  assert.deepEqual(
    rule("iptables -A OUTPUT -m owner --uid-owner _apt --gid-owner 1000-2000 -j ACCEPT", "output").match,
    { skuid: "_apt", skgid: "1000-2000" },
  );
  assert.deepEqual(rule("iptables -A OUTPUT -m owner ! --uid-owner 1000-2000 -j DROP", "output").match, {
    skuid: { not: "1000-2000" },
  });
  // root stays 0 (the one name with the same id on every host).
  assert.deepEqual(rule("iptables -A OUTPUT -m owner --uid-owner root -j ACCEPT", "output").match, { skuid: 0 });
});

test("owner values iptables refuses too, and names the policy cannot hold, are refused", () => {
  for (const [value, why] of [
    ["33-nobody", /not a user id, range or name/], // iptables-restore: Bad value for "--uid-owner"
    ["a$b", /not a user id, range or name/],
    ["x".repeat(33), /not a user id, range or name/],
    ["-x", /not a user id, range or name/],
  ] as const) {
    const r = importPolicy("iptables", `iptables -A OUTPUT -m owner --uid-owner '${value}' -j ACCEPT`);
    assert.match(r.errors[0]?.message ?? "", why, value);
  }
});

// libxt_owner reads ids with strtoul base 0 and `-` or `:` between a range's ends, at most
// 4294967294 (measured, iptables 1.8.9 in a namespace: 010 lists as 8, 0x21 as 33, 5:9 as 5-9;
// 4294967295 and 08 are "Bad value"; 7-3 the kernel refuses, Invalid argument).
test("owner ids are read as iptables reads them: octal, hex, ':' ranges, at most 4294967294", () => {
  for (const [value, want] of [
    ["010", 8],
    ["0x21", 33],
    ["0X1f", 31],
    ["0", 0],
    ["4294967294", 4294967294],
    ["5:9", "5-9"],
    ["010-0x20", "8-32"],
    ["7:7", 7],
    ["1000-2000", "1000-2000"],
  ] as const) {
    assert.deepEqual(
      rule(`iptables -A OUTPUT -m owner --uid-owner ${value} -j ACCEPT`, "output").match,
      { skuid: want },
      value,
    );
    assert.deepEqual(
      rule(`iptables -A OUTPUT -m owner ! --gid-owner ${value} -j ACCEPT`, "output").match,
      { skgid: { not: want } },
      value,
    );
  }
  for (const value of ["4294967295", "08", "0x", "7-3", "5:", "1-4294967295", "0x100000000"]) {
    const r = importPolicy("iptables", `iptables -A OUTPUT -m owner --uid-owner ${value} -j ACCEPT`);
    assert.match(r.errors[0]?.message ?? "", /not a user id, range or name/, value);
  }
});

test("schema: skuid/skgid take an id, a range or a portable user name; hostile text is refused", () => {
  const doc = (skuid: unknown) => ({
    chains: { output: { table: "filter", hook: "output", rules: [{ match: { skuid }, action: "accept" }] } },
  });
  for (const ok of [0, 4294967295, "1000-2000", "www-data", "_apt", "systemd-network", "john.doe", "a".repeat(32)])
    assert.ok(Policy.safeParse(doc(ok)).success, JSON.stringify(ok));
  for (const bad of [
    'a"b',
    "a b",
    "a;b",
    "a{b",
    "$x",
    "@set",
    "",
    "a".repeat(33),
    "-x",
    ".hidden",
    "1000",
    "12ab",
    "a\nb",
    "33-nobody",
  ])
    assert.ok(!Policy.safeParse(doc(bad)).success, JSON.stringify(bad));
  assert.ok(!Policy.safeParse(doc({ not: 'x" accept' })).success);
});

/** The rule lines of both renders of one imported output rule. */
function renders(line: string): { nft: string; ipt: string } {
  const r = importPolicy("iptables", line);
  assert.deepEqual(r.errors, []);
  const v = validatePolicy(r.policy, { target: "nftables" });
  assert.deepEqual(v.errors, []);
  const n = renderNft(v.policy!);
  assert.ok(n.ok, JSON.stringify(!n.ok && n.errors));
  const i = renderIptables(v.policy!);
  assert.ok(i.ok, JSON.stringify(!i.ok && i.errors));
  return {
    nft: n.text
      .split("\n")
      .filter((l) => l.includes("output rule 1"))
      .join("\n"),
    ipt: i.text
      .split("\n")
      .filter((l) => l.startsWith("-A PAL-output"))
      .join("\n"),
  };
}

test("nft renders a name quoted (nft resolves it when it loads the rule), iptables as written", () => {
  assert.deepEqual(renders("iptables -A OUTPUT -m owner --uid-owner www-data -j ACCEPT"), {
    nft: 'add rule inet palisade output meta skuid "www-data" accept comment "output rule 1"',
    ipt: "-A PAL-output -m owner --uid-owner www-data -j ACCEPT",
  });
  assert.deepEqual(renders("iptables -A OUTPUT -m owner ! --uid-owner nobody ! --gid-owner john.doe -j DROP"), {
    nft: 'add rule inet palisade output meta skuid != "nobody" meta skgid != "john.doe" drop comment "output rule 1"',
    ipt: "-A PAL-output -m owner ! --uid-owner nobody ! --gid-owner john.doe -j DROP",
  });
});

test("an unknown name: nft's refusal (stderr as nft 1.0.6 prints it) names the rule and the user", () => {
  const text =
    "table inet palisade\nadd chain inet palisade output { type filter hook output priority 0; }\n" +
    'add rule inet palisade output meta skuid "nosuchuser" accept comment "output rule 1"\n';
  const stderr =
    '/dev/stdin:3:42-53: Error: User does not exist\nadd rule inet palisade output meta skuid "nosuchuser" accept comment "output rule 1"\n                                         ^^^^^^^^^^^^\n';
  const { message, location } = parseNftStderr(stderr);
  assert.equal(
    ownerRefusal(message!, location!, text),
    'nft refused the ruleset: rule "output rule 1" of chain output matches user nosuchuser by name (skuid), and this ' +
      "host has no user nosuchuser; nft, like iptables, looks the name up on the host that loads the rule: create " +
      "the user there or match its numeric id",
  );
  const g = parseNftStderr(
    "/dev/stdin:1:33-43: Error: Group does not exist\nadd rule inet t o meta skgid != nosuchgroup counter\n                                ^^^^^^^^^^^\n",
  );
  assert.match(
    ownerRefusal(g.message!, g.location!)!,
    /^nft refused the ruleset: the rule at line 1 \(add rule inet t o meta skgid != nosuchgroup counter\) matches group nosuchgroup by name \(skgid\)/,
  );
  assert.equal(ownerRefusal("Could not process rule: No such file or directory", location!), undefined);
});
