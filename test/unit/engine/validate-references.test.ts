import { test } from "node:test";
import { chain, hasError, valid } from "../../support/validate.ts";

const jumpTo = (target: string, extra: Record<string, unknown> = {}) => ({
  chains: { input: { hook: "input", rules: [{ action: { type: "jump", chain: target } }] }, ...extra },
});

test("jump to a missing chain", () => hasError(jumpTo("nope"), "unknown_chain", "/chains/input/rules/0/action/chain"));
test("jump into a base chain", () =>
  hasError(
    jumpTo("output", { output: { hook: "output" } }),
    "jump_to_base_chain",
    "/chains/input/rules/0/action/chain",
  ));
test("jump across tables", () =>
  hasError(jumpTo("m", { m: { table: "mangle" } }), "jump_cross_table", "/chains/input/rules/0/action/chain"));
test("a valid jump", () => valid(jumpTo("u", { u: { rules: [{ action: "accept" }] } })));

test("jump loops are refused", () => {
  const doc = {
    chains: {
      input: { hook: "input", rules: [{ action: { type: "jump", chain: "a" } }] },
      a: { rules: [{ action: { type: "jump", chain: "b" } }] },
      b: { rules: [{ action: { type: "goto", chain: "a" } }] },
    },
  };
  hasError(doc, "chain_loop", "/chains/b/rules/0/action/chain");
  hasError(
    chain([{ action: { type: "jump", chain: "s" } }], { name: "s", hook: null }),
    "chain_loop",
    "/chains/s/rules/0/action/chain",
  );
});

test("@set references must exist and hold addresses of the rule's family", () => {
  hasError(chain([{ match: { saddr: "@bad" }, action: "drop" }]), "unknown_set", "/chains/c/rules/0/match/saddr");
  hasError(
    chain([{ match: { saddr: ["10.0.0.1", "@ports"] }, action: "drop" }], {
      extra: { sets: { ports: { type: "inet_service", elements: [22] } } },
    }),
    "set_type_mismatch",
    "/chains/c/rules/0/match/saddr/1",
  );
  hasError(
    chain([{ match: { family: "ipv4", daddr: { not: "@v6" } }, action: "drop" }], {
      extra: { sets: { v6: { type: "ipv6_addr" } } },
    }),
    "address_family_mismatch",
    "/chains/c/rules/0/match/daddr/not",
  );
  valid(
    chain([{ match: { saddr: "@bl" }, action: "drop" }], {
      extra: { sets: { bl: { type: "ipv4_addr", interval: true, elements: ["10.0.0.0/8", "192.0.2.1"] } } },
    }),
  );
});

test("counters, quotas and accounting tables must be declared", () => {
  hasError(chain([{ action: { type: "counter", name: "x" } }]), "unknown_counter", "/chains/c/rules/0/action/name");
  hasError(
    chain([{ match: { quota: { name: "q" } }, action: "accept" }]),
    "unknown_quota",
    "/chains/c/rules/0/match/quota/name",
  );
  hasError(
    chain([{ action: { type: "account", table: "sales" } }], { hook: "forward" }),
    "unknown_accounting_table",
    "/chains/c/rules/0/action/table",
  );
  valid(
    chain([{ action: { type: "account", table: "sales" } }], {
      hook: "forward",
      extra: { accounting: { sales: { prefix: "192.168.1.0/24" } } },
    }),
  );
});
