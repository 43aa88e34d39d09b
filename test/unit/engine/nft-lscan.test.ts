// lscan's connection kinds on nftables: what the compiler generates. The kernel test
// (test/kernel/nft-lscan.test.ts) sends the scans.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";

const render = (rules: unknown[]) =>
  renderNft(Policy.parse({ chains: { input: { hook: "input", rules } } } as PolicyInput));
const textOf = (rules: unknown[]) => {
  const r = render(rules);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.text;
};

test("each kind is one masked-label test on the initiator's FIN/RST; the tracker is declared once", () => {
  const t = textOf([
    { match: { protocol: "tcp", xt: { lscan: ["synscan"] } }, action: "drop" },
    { match: { protocol: "tcp", dport: 22, xt: { lscan: ["grscan"] } }, action: "drop" },
  ]);
  assert.match(
    t,
    /ct direction original tcp flags & \(fin \| rst\) != 0 ct label & \(120 \| 121 \| 122 \| 123\) == 120 drop/,
  );
  assert.match(t, /ct label & \(122 \| 123\) == 122 drop/);
  assert.equal(t.match(/add chain inet palisade lscan_track /g)?.length, 1);
  assert.match(t, /lscan_track_prerouting \{ type filter hook prerouting priority mangle - 1 ;/);
  assert.match(t, /lscan_track_output \{ type filter hook output priority mangle - 1 ;/);
  assert.match(t, /lscan_track ct direction original @ih,0,8 >= 0 ct label set 123/);
});

test("--stealth alone declares no tracker", () => {
  const t = textOf([{ match: { protocol: "tcp", xt: { lscan: ["stealth"] } }, action: "drop" }]);
  assert.doesNotMatch(t, /lscan_track/);
});

test("several kinds: one rule each, and a non-verdict action is allowed (a packet passes at most one)", () => {
  const t = textOf([
    {
      match: { protocol: "tcp", xt: { lscan: ["stealth", "synscan", "cnscan", "grscan"] } },
      action: { type: "log", prefix: "scan " },
    },
  ]);
  const rules = t.split("\n").filter((l) => l.startsWith("add rule inet palisade input") && l.includes("scan "));
  assert.equal(rules.length, 4);
});

test("with ipv4options --any the alternatives are no longer exclusive: a non-verdict action is refused", () => {
  const r = render([
    {
      match: {
        protocol: "tcp",
        xt: {
          lscan: ["synscan", "cnscan"],
          ipv4options: { any: true, flags: [{ option: "lsrr" }, { option: "ssrr" }] },
        },
      },
      action: { type: "log", prefix: "x" },
    },
  ]);
  assert.ok(!r.ok);
  assert.ok(
    r.errors.some((e) => e.code === "nft_mixed_address_list"),
    JSON.stringify(r.errors),
  );
});
