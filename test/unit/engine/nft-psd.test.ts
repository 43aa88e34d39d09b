// psd on nftables: what the compiler generates from the parameters, and what it refuses.
// test/kernel/nft-psd.test.ts runs it with real packets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { psdPlan } from "../../../src/engine/compile/nft/psd.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";

const doc = (match: Record<string, unknown>, action: unknown = "drop"): PolicyInput =>
  ({ chains: { input: { hook: "input", rules: [{ match, action }] } } }) as PolicyInput;
const render = (d: PolicyInput) => renderNft(Policy.parse(d));
const textOf = (d: PolicyInput) => {
  const r = render(d);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.text;
};
const errorsOf = (d: PolicyInput) => {
  const r = render(d);
  assert.ok(!r.ok, "expected a refusal");
  return r.errors;
};

test("xt_psd's defaults: threshold 21 is a bucket of 20 tokens, 3 takes below 1024, 1 from 1024, delay 3 s", () => {
  const t = textOf(doc({ protocol: "tcp", xt: { psd: {} } }));
  const lo = /th dport < 1024 (.*) goto psd_[0-9a-f]{10}_v4_add/.exec(t);
  assert.ok(lo, t);
  assert.equal(
    lo[1]!.match(/update @psd_[0-9a-f]{10}_w_v4 \{ ip saddr timeout 3000ms limit rate 1\/week burst 20 packets \}/g)
      ?.length,
    3,
  );
  const hi = /th dport >= 1024 (.*) goto psd_[0-9a-f]{10}_v4_add/.exec(t);
  assert.equal(hi![1]!.match(/update @psd_[0-9a-f]{10}_w_v4/g)?.length, 1);
  // The check rule: a new port (not remembered) of a detected source, TCP without ACK/RST.
  assert.match(
    t,
    /add rule inet palisade input meta l4proto tcp tcp flags & \(ack \| rst\) == 0 ip saddr @psd_[0-9a-f]{10}_hit_v4 ip saddr \. th dport != @psd_[0-9a-f]{10}_ports_v4 drop/,
  );
  assert.match(t, /add rule inet palisade input meta l4proto tcp jump psd_[0-9a-f]{10}_v4/);
  assert.match(t, /ip6 saddr @psd_[0-9a-f]{10}_hit_v6/);
});

test("the first port of a sequence takes at most threshold-1 units: it never matches (as in xt_psd)", () => {
  const t = textOf(doc({ protocol: "tcp", xt: { psd: { weightThreshold: 3, loPortsWeight: 5, hiPortsWeight: 1 } } }));
  const first = /psd_[0-9a-f]{10}_v4_first th dport < 1024 (.*) goto/.exec(t);
  assert.equal(first![1]!.match(/limit rate 1\/week burst 2 packets/g)?.length, 2);
  const next = /psd_[0-9a-f]{10}_v4 th dport < 1024 (.*) goto/.exec(t);
  assert.equal(next![1]!.match(/limit rate/g)?.length, 5);
});

test("weights are divided by their gcd, the threshold rounded up (W >= T iff W/g >= ceil(T/g))", () => {
  assert.deepEqual(psdPlan({ weightThreshold: 21, loPortsWeight: 6, hiPortsWeight: 2, delayThreshold: 50 }), {
    threshold: 11,
    lo: 3,
    hi: 1,
    delayMs: 500,
  });
  const t = textOf(doc({ protocol: "udp", xt: { psd: { weightThreshold: 21, loPortsWeight: 6, hiPortsWeight: 2 } } }));
  assert.match(t, /burst 10 packets/);
  assert.doesNotMatch(t, /burst 20 packets/);
});

test("without a protocol both TCP and UDP are weighed, one check rule each; threshold 1: no bucket", () => {
  const t = textOf(doc({ family: "ipv4", xt: { psd: { weightThreshold: 1 } } }));
  assert.match(t, /meta l4proto \{ tcp, udp, udplite \} jump psd_[0-9a-f]{10}_v4/);
  assert.match(t, /meta l4proto tcp tcp flags & \(ack \| rst\) == 0 ip saddr @psd_[0-9a-f]{10}_hit_v4/);
  assert.match(t, /meta l4proto \{ udp, udplite \} ip saddr @psd_[0-9a-f]{10}_hit_v4/);
  // No bucket (nft would read `burst 0` as its default of 5): the first port starts the
  // sequence, every later new port reaches the rule that adds the source to @hit.
  assert.doesNotMatch(t, /limit rate/);
  assert.match(t, /add rule inet palisade psd_[0-9a-f]{10}_v4_first th dport < 1024 update @psd_[0-9a-f]{10}_seen_v4/);
  assert.match(
    t,
    /add rule inet palisade psd_[0-9a-f]{10}_v4 add @psd_[0-9a-f]{10}_hit_v4 \{ ip saddr timeout 3000ms \}/,
  );
});

test("refused: weights too large, a protocol psd never sees, stateful matches in the same rule", () => {
  let errs = errorsOf(doc({ xt: { psd: { loPortsWeight: 17, hiPortsWeight: 1 } } }));
  assert.equal(errs[0]!.code, "nft_psd_limits");
  assert.equal(errs[0]!.path, "/chains/input/rules/0/match/xt/psd");
  errs = errorsOf(doc({ xt: { psd: { weightThreshold: 20_001, loPortsWeight: 2, hiPortsWeight: 2 } } }));
  assert.equal(errs[0]!.code, "nft_psd_limits");
  errs = errorsOf(doc({ protocol: "icmp", xt: { psd: {} } }));
  assert.equal(errs[0]!.code, "nft_psd_protocol");
  assert.equal(errs[0]!.path, "/chains/input/rules/0/match/protocol");
  errs = errorsOf(doc({ protocol: "tcp", limit: { rate: "10/second" }, xt: { psd: {} } }));
  assert.equal(errs[0]!.code, "nft_psd_combination");
  assert.match(errs[0]!.message, /limit/);
});

test("the support matrix lets psd through for nftables", () => {
  const v = validatePolicy(doc({ protocol: "tcp", xt: { psd: { weightThreshold: 21 } } }), { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
});

test("psd sets are named from the rule's chain and match, not its position: a rule inserted above keeps them", () => {
  const psdRule = { match: { protocol: "tcp", xt: { psd: {} } }, action: "drop" };
  const one = textOf({ chains: { input: { hook: "input", rules: [psdRule] } } } as PolicyInput);
  const two = textOf({
    chains: { input: { hook: "input", rules: [{ match: { protocol: "udp", dport: 9 }, action: "accept" }, psdRule] } },
  } as PolicyInput);
  const names = (t: string) => [...new Set(t.match(/psd_[0-9a-f]{10}\w*/g))].sort();
  assert.ok(names(one).length > 0);
  assert.deepEqual(names(two), names(one));
  // Another match (another threshold) is another rule's state: other names.
  const other = textOf(doc({ protocol: "tcp", xt: { psd: { weightThreshold: 30 } } }));
  assert.notDeepEqual(names(other), names(one));
  // Two rules of one chain with the same match: the second takes `_2`.
  const twins = textOf({ chains: { input: { hook: "input", rules: [psdRule, psdRule] } } } as PolicyInput);
  const id = /jump (psd_[0-9a-f]{10})_v4/.exec(one)![1]!;
  assert.match(twins, new RegExp(`jump ${id}_v4\\b`));
  assert.match(twins, new RegExp(`jump ${id}_2_v4\\b`));
});
