// A recent hit count with a limit beside it, and two hit-count rules on one list, on
// nftables (compile/hitcount.ts countedBeforeRules; docs/engine.md, recent hitcount).
// The widespread ICMPFLOOD / SSHBRUTE template: --set, then --update --hitcount H with
// -m limit -j NFLOG, then the same --update with -j DROP.
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
const CHAIN = [":INPUT ACCEPT [0:0]", ":ICMPFLOOD - [0:0]", "-A INPUT -p icmp -m icmp --icmp-type 8 -j ICMPFLOOD"];
const SET = "-A ICMPFLOOD -m recent --set --name ICMP --mask 255.255.255.255 --rsource";
const CHECK = "-m recent --update --seconds 1 --hitcount 6 --rttl --name ICMP --mask 255.255.255.255 --rsource";
const rulesOf = (text: string) => text.split("\n").filter((l) => l.startsWith("add rule inet palisade ICMPFLOOD "));

test("ICMPFLOOD template: counted once, the limit only in the log rule, evaluated once there", () => {
  const r = render([
    ...CHAIN,
    SET,
    `-A ICMPFLOOD ${CHECK} -m limit --limit 1/sec --limit-burst 1 -j NFLOG --nflog-group 0 --nflog-prefix "flood: "`,
    `-A ICMPFLOOD ${CHECK} -j DROP`,
    "-A ICMPFLOOD -j ACCEPT",
  ]);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const rules = rulesOf(r.text);
  const jumps = rules.filter((l) => l.includes("jump recent_ICMP_hc6_1s_v4"));
  assert.equal(jumps.length, 1, "one count per packet, as xt_recent's one --set stamp");
  assert.doesNotMatch(jumps[0]!, /limit/, "the counting jump evaluates no token bucket");
  const log = rules.find((l) => l.includes(" log "))!;
  assert.match(log, /limit rate 1\/second burst 1 packets .*@recent_ICMP_hc6_1s_v4_blocked log /);
  const drop = rules.find((l) => l.endsWith('drop comment "ICMPFLOOD rule 2"'))!;
  assert.match(drop, /@recent_ICMP_hc6_1s_v4_blocked drop/);
  assert.doesNotMatch(drop, /limit/);
  // The order: stamp, count (jump), log, drop.
  assert.ok(rules.indexOf(jumps[0]!) < rules.indexOf(log) && rules.indexOf(log) < rules.indexOf(drop));
});

test("two hit-count rules on one list with one counter: the second only tests (was counted twice, blocking at half the count)", () => {
  const r = render([
    ...CHAIN,
    SET,
    `-A ICMPFLOOD ${CHECK} -j NFLOG --nflog-group 0`,
    `-A ICMPFLOOD ${CHECK} -j DROP`,
    "-A ICMPFLOOD -j ACCEPT",
  ]);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.equal(rulesOf(r.text).filter((l) => l.includes("jump recent_ICMP_hc6_1s_v4")).length, 1);
  // Another hit count on the list (an update) is refused: see nft-hitcount-counters.test.ts.
});

test("a limit beside a hit count stays refused where the jump would not count this rule's packets", () => {
  // Check then stamp: the set rule after the check.
  const after = render([
    ...CHAIN,
    `-A ICMPFLOOD ${CHECK.replace(" --rttl", "")} -m limit --limit 1/sec -j DROP`,
    "-A ICMPFLOOD -m recent --set --name ICMP --rsource -m limit --limit 1/sec",
  ]);
  assert.ok(!after.ok);
  assert.match(after.errors.map((e) => e.message).join("\n"), /with the same matches|together with limit/);
  // A list counted where it is stamped (set and rcheck only).
  const atStamp = render([
    ...CHAIN,
    SET,
    "-A ICMPFLOOD -m recent --rcheck --seconds 1 --hitcount 6 --name ICMP --rsource -m limit --limit 1/sec -j DROP",
  ]);
  assert.ok(!atStamp.ok);
  assert.match(atStamp.errors[0]!.message, /together with limit is not supported on target nftables here/);
  // A set rule whose limit comes first stamps fewer packets than the count would see.
  const limitedSet = render([
    ...CHAIN,
    SET.replace("-A ICMPFLOOD ", "-A ICMPFLOOD -m limit --limit 1/sec "),
    `-A ICMPFLOOD ${CHECK.replace(" --rttl", "")} -m limit --limit 1/sec -j DROP`,
  ]);
  assert.ok(!limitedSet.ok);
  assert.match(limitedSet.errors[0]!.message, /not in the same chain before this rule with the same matches/);
});

test("a set rule written --set then -m limit stamps every packet, as xt_recent does: its limit moves to a chain of its own", () => {
  // iptables evaluates the stamp before the limit, so the limit never decides what is stamped;
  // the import moves it (and the line's count) into ICMPFLOOD_limit_1, and the count is taken.
  const r = render([
    ...CHAIN,
    `${SET} -m limit --limit 1/sec`,
    `-A ICMPFLOOD ${CHECK.replace(" --rttl", "")} -m limit --limit 1/sec -j DROP`,
  ]);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const stamp = rulesOf(r.text).find((l) => l.includes("update @recent_ICMP_v4"))!;
  assert.match(stamp, /update @recent_ICMP_v4 \{ ip saddr \} jump ICMPFLOOD_limit_1 /);
  assert.doesNotMatch(stamp, /limit rate/);
  assert.equal(rulesOf(r.text).filter((l) => l.includes("jump recent_ICMP_hc6_1s_v4")).length, 1);
});
