// xt_conntrack tests a packet without a conntrack entry (INVALID, UNTRACKED) on --ctstate alone
// and skips the match's other options (test/kernel/import-ctstate-no-entry.test.ts measures it).
// Where the state test can pass for such a packet, one -m conntrack with --ctstate and other
// options matches it whatever those say; the policy's conntrack keys need an entry, so the
// import refuses the rule and says which two rules to write.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";

function imp(m: string) {
  return importPolicy("iptables", `iptables -A INPUT -p udp -m conntrack ${m} -j DROP\n`);
}

test("--ctstate that lets packets without an entry through, beside other conntrack options: refused with the two rules", () => {
  for (const [m, noEntry, rest] of [
    [
      "! --ctstate DNAT --ctorigdst 10.9.9.9",
      "INVALID,UNTRACKED",
      "! --ctstate DNAT,INVALID,UNTRACKED --ctorigdst ...",
    ],
    ["! --ctstate NEW --ctstatus ASSURED", "INVALID,UNTRACKED", "! --ctstate NEW,INVALID,UNTRACKED --ctstatus ..."],
    ["! --ctstate INVALID --ctorigsrc 10.0.0.0/8", "UNTRACKED", "! --ctstate INVALID,UNTRACKED --ctorigsrc ..."],
    ["--ctstate NEW,INVALID --ctproto tcp", "INVALID", "--ctstate NEW --ctproto ..."],
    ["--ctstate UNTRACKED --ctstatus ASSURED", "UNTRACKED", "--ctstatus ..."],
  ] as const) {
    const r = imp(m);
    assert.equal(r.errors[0]?.code, "import_unsupported", m);
    assert.match(r.errors[0]!.message, /xt_conntrack skips the other options/, m);
    assert.ok(
      r.errors[0]!.message.endsWith(
        `Write two rules with the same target: -m conntrack --ctstate ${noEntry} (those packets), then -m conntrack ${rest} (the packets with an entry)`,
      ),
      r.errors[0]!.message,
    );
  }
  assert.equal(
    imp("! --ctstate DNAT --ctorigdst 10.9.9.9").errors[0]!.message,
    "line 1: -m conntrack ! --ctstate DNAT with --ctorigdst: for a packet without a conntrack entry (INVALID, UNTRACKED), " +
      "which this state test lets through, xt_conntrack skips the other options, so iptables matches it whatever the other " +
      "options (--ctorigdst) say; the policy's conntrack keys need an entry. Write two rules with the same target: " +
      "-m conntrack --ctstate INVALID,UNTRACKED (those packets), then -m conntrack ! --ctstate DNAT,INVALID,UNTRACKED " +
      "--ctorigdst ... (the packets with an entry)",
  );
});

test("--ctstate that no packet without an entry passes, or no other option: imported as before", () => {
  for (const [m, match] of [
    ["--ctstate NEW --ctorigdst 10.9.9.9", { ctState: ["new"], ctOriginal: { daddr: "10.9.9.9" } }],
    [
      "! --ctstate INVALID,UNTRACKED,DNAT --ctorigdst 10.9.9.9",
      { ctState: { not: ["invalid", "untracked"] }, ctStatus: { not: ["dnat"] }, ctOriginal: { daddr: "10.9.9.9" } },
    ],
    ["! --ctstate DNAT", { ctStatus: { not: ["dnat"] } }],
    ["--ctstate INVALID,UNTRACKED", { ctState: ["invalid", "untracked"] }],
  ] as const) {
    const r = imp(m);
    assert.deepEqual(r.errors, [], m);
    assert.deepEqual(r.policy!.chains.input!.rules.at(-1)!.match, { protocol: "udp", ...match }, m);
  }
});
