// A stateful match before the line's last -m limit (`-m recent --rcheck ... -m limit -j
// ACCEPT`): iptables spends a token only on the packets the other matches let through; the
// policy evaluates a rule's limit before its other stateful matches. The import keeps the
// line's meaning by moving the limit and the action into a generated chain the rule jumps
// to (a packet over the limit returns and meets the next rule, as after a rule that did not
// match); a RETURN or goto cannot move there and is refused. The kernel test
// import-limit-last proves the verdicts with packets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { validatePolicy } from "../../../src/engine/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";

const save = (...rules: string[]) =>
  ["*filter", ":INPUT DROP [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ...rules, "COMMIT", ""].join("\n");
const LINE = "-A INPUT -m recent --rcheck --name X --rsource -m limit --limit 1/hour --limit-burst 1 -j ACCEPT";

function imported(text: string) {
  const r = importPolicy("iptables-save", text);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(validatePolicy(r.policy!, { target: "nftables" }).errors, []);
  return r;
}

test("recent --rcheck before limit -j ACCEPT: the rule jumps to a chain holding the limit and the accept", () => {
  const r = imported(save("-A INPUT -s 10.99.0.3/32 -m recent --set --name X --rsource", LINE));
  const chains = r.policy!.chains;
  assert.deepEqual(chains.input!.rules.at(-1), {
    match: { recent: { name: "X", mode: "rcheck", side: "source" } },
    action: { type: "jump", chain: "input_limit_1" },
  });
  assert.deepEqual(chains.input_limit_1, {
    table: "filter",
    rules: [{ match: { limit: { rate: "1/hour", burst: 1 } }, action: "accept" }],
  });
  const line = r.report.find((l) => l.text === LINE)!;
  assert.equal(line.status, "imported");
  assert.equal(line.path, "/chains/input/rules/2");
  assert.match(line.reason!, /-m recent before -m limit: the limit and the action are chain input_limit_1's rule/);
  assert.doesNotMatch(line.reason!, /warning/);
});

test("the renders: the limit is evaluated only in the generated chain, after the recent check", () => {
  const r = imported(save(LINE));
  const nft = renderNft(r.policy!);
  assert.ok(nft.ok);
  assert.match(nft.text, /add rule inet palisade input ip saddr @recent_X_v4 jump input_limit_1/);
  assert.match(nft.text, /add rule inet palisade input_limit_1 limit rate 1\/hour burst 1 packets accept/);
  assert.doesNotMatch(nft.text, /add rule inet palisade input [^\n]*limit rate/);
  const ipt = renderIptables(r.policy!);
  assert.ok(ipt.ok);
  const rules = ipt.text.split("\n").filter((l) => l.includes("recent") || l.includes("-m limit"));
  assert.ok(
    rules.some((l) => /--rcheck/.test(l) && / -j PAL-input_limit_1$/.test(l) && !/-m limit/.test(l)),
    rules.join("\n"),
  );
  assert.ok(
    rules.some((l) => /^-A PAL-input_limit_1 -m limit --limit 1\/hour --limit-burst 1 .*-j ACCEPT/.test(l)),
    rules.join("\n"),
  );
});

test("hashlimit before limit, a comment and a log action: split the same way, the comment on both rules", () => {
  const line =
    '-A INPUT -p tcp -m tcp --dport 22 -m hashlimit --hashlimit-above 5/min --hashlimit-mode srcip --hashlimit-name ssh -m comment --comment "ssh flood" -m limit --limit 1/min -j LOG --log-prefix "flood "';
  const r = imported(save(line));
  const input = r.policy!.chains.input!.rules.at(-1)!;
  assert.equal(input.comment, "ssh flood");
  assert.ok(input.match?.meter && !input.match.limit);
  assert.deepEqual(input.action, { type: "jump", chain: "input_limit_1" });
  const helper = r.policy!.chains.input_limit_1!.rules;
  assert.equal(helper.length, 1);
  assert.equal(helper[0]!.comment, "ssh flood");
  assert.deepEqual(helper[0]!.match, { limit: { rate: "1/minute" } });
  assert.equal(typeof helper[0]!.action === "object" && helper[0]!.action.type, "log");
  assert.match(r.report.find((l) => l.text === line)!.reason!, /-m hashlimit before -m limit/);
});

test("the generated chain's name is free: a user chain of that name (this table or another) and earlier ones count", () => {
  const text = [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":input_limit_2 - [0:0]",
    "COMMIT",
    "*filter",
    ":INPUT ACCEPT [0:0]",
    ":input_limit_1 - [0:0]",
    "-A INPUT -p udp -j input_limit_1",
    "-A INPUT -m recent --rcheck --name A -m limit --limit 1/s -j DROP",
    "-A INPUT -m recent --rcheck --name B -m limit --limit 2/s -j DROP",
    "COMMIT",
    "",
  ].join("\n");
  const r = imported(text);
  const jumps = r.policy!.chains.input!.rules.map((x) =>
    typeof x.action === "object" && "chain" in x.action ? x.action.chain : "",
  );
  assert.deepEqual(jumps.slice(-2), ["input_limit_3", "input_limit_4"]);
  assert.equal(r.policy!.chains.input_limit_3!.rules[0]!.match?.limit?.rate, "1/second");
  assert.equal(r.policy!.chains.input_limit_4!.rules[0]!.match?.limit?.rate, "2/second");
});

test("-I places the rule; the split rule of a rule without a target counts in the generated chain", () => {
  const r = imported(save("-A INPUT -j ACCEPT", "-I INPUT 1 -m quota --quota 1000 -m limit --limit 3/s"));
  const input = r.policy!.chains.input!.rules;
  assert.deepEqual(input[1]!.action, { type: "jump", chain: "input_limit_1" });
  assert.ok(input[1]!.match?.quota);
  assert.equal(input[2]!.action, "accept");
  const helper = r.policy!.chains.input_limit_1!.rules[0]!;
  assert.deepEqual(helper.match, { limit: { rate: "3/second" } });
  assert.equal(typeof helper.action === "object" && helper.action.type, "counter");
});

test("RETURN and goto cannot move into another chain: refused, naming the line and why; no chain is left behind", () => {
  for (const [tail, what] of [
    ["-j RETURN", /-j RETURN: .* RETURN would act for that chain instead of this one/],
    ["-g OTHER", /-g OTHER: .* the goto would act for that chain instead of this one/],
  ] as const) {
    const text = save(":OTHER - [0:0]", `-A INPUT -m recent --rcheck --name X -m limit --limit 1/s ${tail}`);
    const r = importPolicy(
      "iptables-save",
      text.replace(":OTHER - [0:0]\n", "").replace(":OUTPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]\n:OTHER - [0:0]"),
    );
    assert.equal(r.errors.length, 1, JSON.stringify(r.errors));
    assert.equal(r.errors[0]!.code, "import_unsupported");
    assert.match(r.errors[0]!.message, /line 6: -m recent before -m limit with /);
    assert.match(r.errors[0]!.message, what);
    assert.ok(r.policy && !Object.keys(r.policy.chains).some((k) => k.includes("limit")));
  }
});

test("limit before recent (the policy's own order): imported as it is, no chain", () => {
  const r = imported(save("-A INPUT -m limit --limit 1/s -m recent --rcheck --name X -j ACCEPT"));
  assert.deepEqual(Object.keys(r.policy!.chains), ["input"]);
  assert.equal(r.report.find((l) => l.text.includes("recent"))!.reason, undefined);
});
