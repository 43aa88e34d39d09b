import { test } from "node:test";
import assert from "node:assert/strict";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { chain, hasError, valid } from "../../support/validate.ts";

test("MIRROR is refused with the reason", () => {
  const doc = chain([{ match: { protocol: "tcp", dport: 80 }, action: { type: "mirror" } }]);
  hasError(doc, "mirror_refused", "/chains/c/rules/0/action");
  const msg = validatePolicy(doc).errors.find((e) => e.code === "mirror_refused")!.message;
  assert.match(msg, /loop/);
  assert.match(msg, /removed from Linux 2\.5\/2\.6/);
});

test("ECHO is reflection", () => {
  hasError(chain([{ action: { type: "echo" } }]), "reflection_refused", "/chains/c/rules/0/action");
});

test("DNAT back to the matched source is reflection", () => {
  const doc = chain([{ match: { saddr: "192.0.2.7" }, action: { type: "dnat", to: { address: "192.0.2.7" } } }], {
    table: "nat",
    hook: "prerouting",
  });
  hasError(doc, "reflection_refused", "/chains/c/rules/0/action/to/address");
  valid(
    chain([{ match: { saddr: "10.0.0.0/8" }, action: { type: "dnat", to: { address: "10.0.0.5" } } }], {
      table: "nat",
      hook: "prerouting",
    }),
  ); // A range holding the matched source reflects too, wherever in the range it falls.
  const nat = { table: "nat", hook: "prerouting" } as const;
  for (const [src, first, last] of [
    ["192.0.2.7", "192.0.2.1", "192.0.2.9"],
    ["192.0.2.9", "192.0.2.1", "192.0.2.9"],
    ["2001:db8::7", "2001:db8::1", "2001:db8::ff"],
  ] as const)
    hasError(
      chain([{ match: { saddr: src }, action: { type: "dnat", to: { address: first, addressLast: last } } }], nat),
      "reflection_refused",
      "/chains/c/rules/0/action/to/address",
    );
  valid(
    chain(
      [
        {
          match: { saddr: "192.0.2.10" },
          action: { type: "dnat", to: { address: "192.0.2.1", addressLast: "192.0.2.9" } },
        },
      ],
      nat,
    ),
  );
});

test("SNAT to the matched destination is reflection", () => {
  hasError(
    chain([{ match: { daddr: "192.0.2.9" }, action: { type: "snat", to: { address: "192.0.2.9" } } }], {
      table: "nat",
      hook: "postrouting",
    }),
    "reflection_refused",
    "/chains/c/rules/0/action/to/address",
  );
});

test("TEE to the matched source is reflection", () => {
  hasError(
    chain([{ match: { saddr: ["2001:db8::1"] }, action: { type: "tee", gateway: "2001:db8:0::1" } }], {
      table: "mangle",
      hook: "prerouting",
    }),
    "reflection_refused",
    "/chains/c/rules/0/action/gateway",
  );
});

test("RAWDNAT to the matched source is reflection", () => {
  hasError(
    chain([{ match: { saddr: "192.0.2.7" }, action: { type: "rawdnat", to: "192.0.2.7/32" } }], {
      table: "raw",
      hook: "prerouting",
    }),
    "reflection_refused",
    "/chains/c/rules/0/action/to",
  );
});

test("a mark forward whose backend is the marked source is reflection", () => {
  hasError(
    {
      forwarding: { markForwards: [{ mark: 1, match: { saddr: "192.0.2.7" }, backends: [{ address: "192.0.2.7" }] }] },
    },
    "reflection_refused",
    "/forwarding/markForwards/0/backends/0/address",
  );
});
