import { test } from "node:test";
import assert from "node:assert/strict";
import { chain, diags, hasError, hasWarning, noWarning, valid } from "../../support/validate.ts";

const quotaRule = (name: string) =>
  chain([{ match: { quota: { name } }, action: "accept" }], { extra: { quotas: { [name]: { limit: 1000 } } } });

test("quota names: empty, dot, slash, then the identifier rule", () => {
  hasError(quotaRule(""), "quota_name_empty", "/quotas/");
  hasError(quotaRule(".x"), "quota_name_dot", "/quotas/.x");
  hasError(quotaRule("a/b"), "quota_name_slash", "/quotas/a~1b");
  hasError(quotaRule("a/b"), "quota_name_slash", "/chains/c/rules/0/match/quota/name");
  hasError(quotaRule("9lives"), "invalid_name", "/quotas/9lives");
  valid(quotaRule("monthly"));
});

test("quota invert with grow warns", () => {
  hasWarning(
    chain([{ match: { quota: { name: "g", invert: true } }, action: "accept" }], {
      extra: { quotas: { g: { grow: true } } },
    }),
    "quota_invert_with_grow",
    "/chains/c/rules/0/match/quota/invert",
  );
});

test("quota grow per rule: a bucket is valid; grow: false on a growing quota is an error; invert on a filling rule and a quota every rule fills warn", () => {
  const bucket = (fill: unknown, take: unknown, def: unknown = { limit: 0 }) =>
    chain(
      [
        { match: { quota: fill }, action: "accept" },
        { match: { quota: take }, action: "accept" },
      ],
      { extra: { quotas: { bt: def } } },
    );
  const doc = bucket({ name: "bt", grow: true }, { name: "bt" });
  valid(doc);
  for (const code of ["quota_invert_with_grow", "quota_grows_in_every_rule"]) noWarning(doc, code);
  hasError(
    bucket({ name: "bt" }, { name: "bt", grow: false }, { grow: true }),
    "quota_grow_conflict",
    "/chains/c/rules/1/match/quota/grow",
  );
  // grow: true on a rule of a growing quota only repeats it.
  valid(bucket({ name: "bt", grow: true }, { name: "bt" }, { grow: true }));
  hasWarning(
    bucket({ name: "bt", grow: true, invert: true }, { name: "bt" }),
    "quota_invert_with_grow",
    "/chains/c/rules/0/match/quota/invert",
  );
  noWarning(bucket({ name: "bt", grow: true }, { name: "bt", invert: true }), "quota_invert_with_grow");
  hasWarning(bucket({ name: "bt", grow: true }, { name: "bt", grow: true }), "quota_grows_in_every_rule", "/quotas/bt");
});

test("meter names must not clash with sets or recent lists", () => {
  const meter = { name: "bl", rate: "10/second" };
  hasError(
    chain([{ match: { saddr: "@bl", meter }, action: "drop" }], { extra: { sets: { bl: { type: "ipv4_addr" } } } }),
    "meter_name_conflict",
    "/chains/c/rules/0/match/meter/name",
  );
  hasError(
    chain([
      { match: { meter }, action: "drop" },
      { match: { recent: { name: "bl", mode: "set" } }, action: "accept" },
    ]),
    "meter_name_conflict",
    "/chains/c/rules/1/match/recent/name",
  );
});

test("set elements must fit the set type", () => {
  const set = (def: Record<string, unknown>) => ({ sets: { s: def } });
  hasError(set({ type: "ipv4_addr", elements: ["2001:db8::1"] }), "set_element_invalid", "/sets/s/elements/0");
  hasError(set({ type: "ipv4_addr", elements: ["10.0.0.0/8"] }), "set_element_needs_interval", "/sets/s/elements/0");
  hasError(
    set({ type: "ipv4_addr", interval: true, elements: ["10.0.0.1/8"] }),
    "address_host_bits",
    "/sets/s/elements/0",
  );
  hasError(set({ type: "inet_service", elements: [22, "70000"] }), "set_element_invalid", "/sets/s/elements/1");
  hasError(set({ type: "inet_service", elements: ["1000-2000"] }), "set_element_needs_interval", "/sets/s/elements/0");
  hasError(set({ type: "ether_addr", elements: ["zz:00:00:00:00:00"] }), "set_element_invalid", "/sets/s/elements/0");
  hasError(set({ type: "mark", elements: ["0x1ffffffff"] }), "set_element_invalid", "/sets/s/elements/0");
  hasWarning(
    set({ type: "ipv6_addr", elements: ["2001:db8::1", "2001:DB8::1"] }),
    "set_duplicate_element",
    "/sets/s/elements/1",
  );
});

test("a set smaller than its elements", () => {
  hasError(
    { sets: { s: { type: "ipv4_addr", size: 1, elements: ["10.0.0.1", "10.0.0.2"] } } },
    "set_too_small",
    "/sets/s/size",
  );
});

test("failsafe port 0", () => {
  hasError({ failsafe: { enabled: true, ports: [0] } }, "failsafe_port_invalid", "/failsafe/ports/0");
});

test("mark forwards: active backend in range, one family", () => {
  const mf = (extra: Record<string, unknown>) => ({
    forwarding: {
      markForwards: [
        {
          mark: 1,
          match: { saddr: "10.0.0.0/8" },
          backends: [{ address: "192.0.2.1" }, { address: "192.0.2.2" }],
          ...extra,
        },
      ],
    },
  });
  hasError(mf({ active: 2 }), "active_backend_out_of_range", "/forwarding/markForwards/0/active");
  hasError(
    mf({ backends: [{ address: "192.0.2.1" }, { address: "2001:db8::2" }] }),
    "backend_family_mismatch",
    "/forwarding/markForwards/0/backends/1/address",
  );
  valid(mf({ active: 1 }));
});

test("port forwards: backend family, duplicates", () => {
  const pf = { protocol: "tcp", address: "192.0.2.1", port: 80, backends: [{ address: "2001:db8::5" }] };
  hasError(
    { forwarding: { portForwards: [pf] } },
    "backend_family_mismatch",
    "/forwarding/portForwards/0/backends/0/address",
  );
  const ok = { ...pf, backends: [{ address: "10.0.0.5", weight: 2 }, { address: "10.0.0.6" }] };
  valid({ forwarding: { portForwards: [ok] } });
  hasError({ forwarding: { portForwards: [ok, ok] } }, "duplicate_port_forward", "/forwarding/portForwards/1/port");
  hasError(
    {
      forwarding: {
        markForwards: [
          { mark: 1, match: {}, backends: [{ address: "10.0.0.1" }] },
          { mark: 1, match: {}, backends: [{ address: "10.0.0.2" }] },
        ],
      },
    },
    "duplicate_mark_forward",
    "/forwarding/markForwards/1/mark",
  );
});

test("whole-document limits", async () => {
  const { MAX_CHAINS } = await import("../../../src/engine/validate/limits.ts");
  const chains: Record<string, unknown> = {};
  for (let i = 0; i <= MAX_CHAINS; i++) chains[`c${i}`] = {};
  hasError({ chains }, "too_many_chains", "/chains");
});

test("an interval set a rule adds to: refused on nftables (the kernel refuses interval with dynamic), fine on iptables", () => {
  const doc = (interval: boolean) =>
    chain([{ action: { type: "setUpdate", op: "add", set: "s", key: "saddr" } }], {
      extra: { sets: { s: { type: "ipv4_addr", elements: ["10.0.0.0/8"], interval, dynamic: true } } },
    });
  hasError(doc(true), "unsupported_on_target", "/sets/s/dynamic", "nftables");
  assert.deepEqual(diags(doc(true), "errors", "iptables"), []);
  assert.deepEqual(
    diags({ ...doc(false), sets: { s: { type: "ipv4_addr", dynamic: true } } }, "errors", "nftables"),
    [],
  );
});
