// `-j NFQUEUE` / `-j QUEUE`: the action `queue` (num, to, bypass, fanout), rendered as nft
// `queue num N [bypass]` / `queue num A-B [bypass,fanout]` and iptables -j NFQUEUE.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";
import { ipv4Rules } from "./import-ipv6-pass.ts";

const action = (line: string) => {
  const r = importPolicy("iptables", line);
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors));
  return ipv4Rules(r.policy?.chains.input?.rules)[0]!.action;
};
const err = (line: string) => importPolicy("iptables", line).errors;

test("NFQUEUE: --queue-num (default 0), --queue-bypass, --queue-balance A:B, --queue-cpu-fanout; QUEUE is queue 0", () => {
  assert.deepEqual(action("iptables -A INPUT -p udp -j NFQUEUE --queue-num 3"), { type: "queue", num: 3 });
  assert.deepEqual(action("iptables -A INPUT -j NFQUEUE --queue-num 3 --queue-bypass"), {
    type: "queue",
    num: 3,
    bypass: true,
  });
  assert.deepEqual(action("iptables -A INPUT -j NFQUEUE"), { type: "queue", num: 0 });
  assert.deepEqual(action("iptables -A INPUT -j NFQUEUE --queue-num 010"), { type: "queue", num: 8 });
  assert.deepEqual(action("iptables -A INPUT -j NFQUEUE --queue-balance 2:5 --queue-bypass --queue-cpu-fanout"), {
    type: "queue",
    num: 2,
    to: 5,
    bypass: true,
    fanout: true,
  });
  assert.deepEqual(action("iptables -A INPUT -j QUEUE"), { type: "queue", num: 0 });
});

test("NFQUEUE: out of range, negative, garbage, reversed balance, both num and balance: errors naming the line and value", () => {
  for (const [args, re] of [
    ["--queue-num 65536", /line 1: --queue-num 65536 is not a queue number \(0-65535\)/],
    ["--queue-num -1", /--queue-num -1 is not a queue number/],
    ["--queue-num abc", /--queue-num abc is not a queue number/],
    ["--queue-balance 5:2", /line 1: --queue-balance 5:2 is not a range A:B of queue numbers with A < B/],
    ["--queue-balance 2:2", /--queue-balance 2:2 is not a range/],
    ["--queue-balance 2:70000", /--queue-balance 2:70000 is not a range/],
    ["--queue-balance x", /--queue-balance x is not a range/],
    // 65536 queues: iptables-restore refuses it (RULE_APPEND: Invalid argument); 0:65534 and 1:65535 load.
    ["--queue-balance 0:65535", /--queue-balance 0:65535 spans 65536 queues/],
  ] as const) {
    const e = err(`iptables -A INPUT -j NFQUEUE ${args}`);
    assert.equal(e.length, 1, args);
    assert.equal(e[0]!.code, "import_invalid_value", args);
    assert.match(e[0]!.message, re);
  }
  assert.match(err("iptables -A INPUT -j NFQUEUE --queue-num 1 --queue-balance 2:3")[0]!.message, /not both/);
  assert.match(err("iptables -A INPUT -j NFQUEUE --queue-num 1 --queue-cpu-fanout")[0]!.message, /--queue-balance/);
  assert.match(err("iptables -A INPUT -j NFQUEUE --fail-open")[0]!.message, /--fail-open/);
});

test("queue renders: nft queue num N [bypass] / num A-B [bypass,fanout]; iptables -j NFQUEUE; a terminating verdict", () => {
  const v = validatePolicy({
    chains: {
      input: {
        hook: "input",
        rules: [
          { match: { protocol: "udp", dport: 9 }, action: { type: "queue", num: 3 } },
          { match: { protocol: "udp", dport: 10 }, action: { type: "queue", num: 4, bypass: true } },
          { match: { protocol: "udp", dport: 11 }, action: { type: "queue", num: 2, to: 5 } },
          {
            match: { protocol: "udp", dport: 12 },
            action: { type: "queue", num: 2, to: 5, bypass: true, fanout: true },
          },
        ],
      },
    },
  });
  assert.deepEqual(v.errors, []);
  const nft = renderNft(v.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  assert.match(nft.text, /udp dport 9 .*queue num 3( |$)/m);
  assert.match(nft.text, /udp dport 10 .*queue num 4 bypass/);
  assert.match(nft.text, /udp dport 11 .*queue num 2-5( |$)/m);
  assert.match(nft.text, /udp dport 12 .*queue num 2-5 bypass,fanout/);
  const ipt = renderIptables(v.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  for (const text of [ipt.text, ipt.text6]) {
    assert.match(text, /--dport 9 -j NFQUEUE --queue-num 3\n/);
    assert.match(text, /--dport 10 -j NFQUEUE --queue-num 4 --queue-bypass\n/);
    assert.match(text, /--dport 11 -j NFQUEUE --queue-balance 2:5\n/);
    assert.match(text, /--dport 12 -j NFQUEUE --queue-balance 2:5 --queue-bypass --queue-cpu-fanout\n/);
  }
  for (const bad of [
    { type: "queue", num: 65536 },
    { type: "queue", num: -1 },
    { type: "queue", num: 5, to: 5 },
    { type: "queue", num: 1, fanout: true },
  ]) {
    const r = validatePolicy({ chains: { input: { hook: "input", rules: [{ action: bad }] } } });
    assert.ok(!r.ok, JSON.stringify(bad));
  }
});
