// Hit counts on one list on nftables (compile/hitcount.ts hitcountIdiomErrors; docs/engine.md,
// recent hitcount): xt_recent's --update stamps the list when it matches, which every other
// check of the list counts, so the rendering takes one counter per list with an update; and
// a rule an earlier rule already counted for is not refused for a rule between them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { Policy } from "../../../src/engine/policy/index.ts";

const render = (lines: string[]) => {
  const imported = importPolicy("iptables-save", ["*filter", ...lines, "COMMIT", ""].join("\n"), { family: "ipv4" });
  assert.deepEqual(imported.errors, []);
  return renderNft(Policy.parse(imported.policy));
};
const CHAIN = [":INPUT ACCEPT [0:0]", ":FLOOD - [0:0]", "-A INPUT -p icmp -j FLOOD"];
const SET = "-A FLOOD -m recent --set --name F --rsource";
const upd = (hc: number, s = 60) => `-m recent --update --seconds ${s} --hitcount ${hc} --name F --rsource`;
const messages = (r: ReturnType<typeof render>) =>
  r.ok ? "" : r.errors.map((e) => `${e.path}: ${e.message}`).join("\n");

test("two counters on one list with an update: refused (the update's stamps count for the other counter)", () => {
  // Measured (kernel 6.18, 8 pings): xt_recent LOG 6, DROP 5 (from the 4th); counted per rule, DROP from the 6th.
  const r = render([...CHAIN, SET, `-A FLOOD ${upd(3)} -j LOG`, `-A FLOOD ${upd(6)} -j DROP`]);
  assert.ok(!r.ok);
  assert.match(
    messages(r),
    /\/chains\/FLOOD\/rules\/2\/match\/recent\/hitcount: .*--update stamps the list whenever it matches/,
  );
  assert.doesNotMatch(messages(r), /rules\/1\//, "the first counter itself is fine");
  // Another window is another counter too, and an rcheck counts the update's stamps as well.
  assert.ok(!render([...CHAIN, SET, `-A FLOOD ${upd(3)} -j LOG`, `-A FLOOD ${upd(3, 30)} -j DROP`]).ok);
  const rcheck = `-m recent --rcheck --seconds 60 --hitcount 6 --name F --rsource`;
  assert.ok(!render([...CHAIN, SET, `-A FLOOD ${upd(3)} -j LOG`, `-A FLOOD ${rcheck} -j DROP`]).ok);
  // An update without a hit count stamps every packet it matches.
  const plain = render([
    ...CHAIN,
    SET,
    "-A FLOOD -m recent --update --seconds 60 --name F --rsource -j LOG",
    `-A FLOOD ${upd(3)} -j DROP`,
  ]);
  assert.match(messages(plain), /the update rule at chains\.FLOOD\.rules\[1\] has no hit count/);
  // One counter, or rchecks only (nothing but --set stamps), still render.
  assert.ok(render([...CHAIN, SET, `-A FLOOD ${upd(3)} -j LOG`, `-A FLOOD ${upd(3)} -j DROP`]).ok);
  const rc = (hc: number) => `-m recent --rcheck --seconds 60 --hitcount ${hc} --name F --rsource`;
  assert.ok(render([...CHAIN, SET, `-A FLOOD ${rc(3)} -j LOG`, `-A FLOOD ${rc(6)} -j DROP`]).ok);
});

test("a rule between two rules of one counter does not refuse the second (it was counted at the first)", () => {
  const r = render([
    ...CHAIN,
    SET,
    `-A FLOOD ${upd(3)} -j LOG`,
    "-A FLOOD -s 10.0.0.0/8 -j RETURN",
    `-A FLOOD ${upd(3)} -j DROP`,
  ]);
  assert.ok(r.ok, messages(r));
  const rules = r.text.split("\n").filter((l) => l.startsWith("add rule inet palisade FLOOD "));
  assert.equal(rules.filter((l) => l.includes("jump recent_F_hc3_60s_v4")).length, 1);
  // Still refused where the rule between stands before the first count.
  const before = render([
    ...CHAIN,
    SET,
    "-A FLOOD -s 10.0.0.0/8 -j RETURN",
    `-A FLOOD ${upd(3)} -j LOG`,
    `-A FLOOD ${upd(3)} -j DROP`,
  ]);
  assert.match(messages(before), /rules\/2\/match.*rules\[1\], between the list's set rule and this rule, may stop/);
  // Each refusal says what mends its own case.
  assert.match(
    messages(before),
    /Move chains\.FLOOD\.rules\[1\] after this rule or before the list's set rule at chains\.FLOOD\.rules\[0\]/,
  );
});

test("two set rules before a hit count, or a remove on its list: refused (xt_recent stamps twice; a remove clears the stamps)", () => {
  const twoSets = render([...CHAIN, SET, SET, `-A FLOOD ${upd(3)} -j DROP`]);
  assert.match(messages(twoSets), /the set rules at chains\.FLOOD\.rules\[0\], \[1\] each stamp the packet/);
  assert.match(
    messages(twoSets),
    /Keep one set rule of the list before this rule \(merge chains\.FLOOD\.rules\[0\], \[1\]/,
  );
  const remove = render([
    ...CHAIN,
    SET,
    "-A FLOOD -m recent --remove --name F --rsource -j LOG",
    `-A FLOOD ${upd(3)} -j DROP`,
  ]);
  assert.match(messages(remove), /the remove rule at chains\.FLOOD\.rules\[1\] clears the list's stamps/);
  assert.match(
    messages(remove),
    /Drop the remove rule at chains\.FLOOD\.rules\[1\], or let it clear a list of its own/,
  );
  assert.doesNotMatch(messages(remove), /portKnock/);
  assert.ok(render([...CHAIN, SET, `-A FLOOD ${upd(3)} -j DROP`]).ok);
});
