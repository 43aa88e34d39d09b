// Which kernel features a policy needs (the deploy gate's input, validate/kernel-features.ts):
// by a rule's action (queue, tproxy) or a key of its match (socket), each with the JSON
// pointers of its rules. The names are the driver's probe names, which the agent reports as
// they are (agent/capabilities.ts lists the probes that passed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { KERNEL_FEATURES, kernelFeatureUses, type Policy } from "../../../src/engine/index.ts";
import { PROBES } from "../../../src/engine/driver/capabilities.ts";
import { featureRefusal } from "../../../src/engine/driver/nft.ts";

const policy = {
  chains: {
    pre: {
      hook: "prerouting",
      table: "mangle",
      policy: "accept",
      rules: [
        { match: { protocol: "tcp", socket: { transparent: true } }, action: { type: "mark", value: 1 } },
        { match: { protocol: "tcp", dport: [80] }, action: { type: "tproxy", port: 3129, address: "127.0.0.1" } },
        { match: { protocol: "udp", dport: [53] }, action: "accept" },
      ],
    },
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { match: { protocol: "udp", dport: [7201] }, action: { type: "queue", num: 3 } },
        { match: { protocol: "tcp", socket: {} }, action: "accept" },
      ],
    },
  },
} as unknown as Policy;

test("tproxy by action, socket by match key, queue by action: each with its rules, features sorted", () => {
  assert.deepEqual(kernelFeatureUses(policy), [
    { feature: "queue", rules: ["/chains/input/rules/0"] },
    { feature: "socket", rules: ["/chains/input/rules/1", "/chains/pre/rules/0"] },
    { feature: "tproxy", rules: ["/chains/pre/rules/1"] },
  ]);
  assert.deepEqual(
    kernelFeatureUses({ chains: { input: { hook: "input", policy: "accept" } } } as unknown as Policy),
    [],
  );
});

test("a rule with a socket match and a tproxy action needs both", () => {
  const both = {
    chains: {
      pre: {
        hook: "prerouting",
        rules: [{ match: { socket: { transparent: true } }, action: { type: "tproxy", port: 1 } }],
      },
    },
  } as unknown as Policy;
  assert.deepEqual(
    kernelFeatureUses(both).map((u) => u.feature),
    ["socket", "tproxy"],
  );
});

test("every gated feature is a driver probe of the same name (what the agent reports)", () => {
  for (const name of Object.keys(KERNEL_FEATURES)) assert.ok(name in PROBES, name);
  assert.match(PROBES.tproxy[1], /\btproxy ip to\b/);
  assert.match(PROBES.socket[1], /\bsocket transparent\b/);
});

test("the driver names only queue: where nft's caret falls for a missing nft_tproxy / nft_socket was not measured", () => {
  const enoent = "Could not process rule: No such file or directory";
  const at = (text: string, column: number) => featureRefusal(enoent, { line: 1, column, text });
  assert.equal(at("add rule inet p i queue num 3", 19)?.feature, "queue");
  assert.equal(at("add rule inet p pre meta l4proto tcp tproxy ip to 127.0.0.1:3129", 38), undefined);
  assert.equal(at("add rule inet p i socket transparent 1 accept", 19), undefined);
});
