import { test } from "node:test";
import assert from "node:assert/strict";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { chain, hasError, hasWarning, valid } from "../../support/validate.ts";

const one = (action: unknown, table: string, hook: string | null, match?: unknown) =>
  chain([{ ...(match ? { match } : {}), action }], { table, hook });

test("base chain hooks must exist in their table", () => {
  hasError(one("accept", "filter", "prerouting"), "invalid_hook_for_table", "/chains/c/hook");
  hasError(one("accept", "raw", "input"), "invalid_hook_for_table", "/chains/c/hook");
  hasError(one("accept", "rawpost", "prerouting"), "invalid_hook_for_table", "/chains/c/hook");
  hasError(one("accept", "nat", "forward"), "invalid_hook_for_table", "/chains/c/hook");
  valid(one("accept", "mangle", "forward"));
});

test("a default policy only on base chains", () => {
  hasError(
    { chains: { u: { policy: "drop" }, input: { hook: "input", rules: [{ action: { type: "jump", chain: "u" } }] } } },
    "policy_on_user_chain",
    "/chains/u/policy",
  );
});

test("IPMARK, CHECKSUM and DHCPMAC only in mangle", () => {
  hasError(one({ type: "ipmark", addr: "src" }, "filter", "forward"), "mangle_only", "/chains/c/rules/0/action");
  hasError(one({ type: "checksumFill" }, "filter", "output"), "mangle_only", "/chains/c/rules/0/action");
  hasError(
    one({ type: "dhcpmac", setMac: "00:50:56:00:00:00/24" }, "filter", "forward"),
    "mangle_only",
    "/chains/c/rules/0/action",
  );
  valid(one({ type: "ipmark", addr: "dst", andMask: 0xffff, orMask: 0x10000 }, "mangle", "postrouting"));
});

test("RAWSNAT/RAWDNAT only in raw or rawpost", () => {
  hasError(
    one({ type: "rawsnat", to: "192.0.2.0/24" }, "nat", "postrouting"),
    "rawnat_table",
    "/chains/c/rules/0/action",
  );
  valid(one({ type: "rawsnat", to: "212.201.100.135" }, "rawpost", "postrouting"));
  valid(one({ type: "rawdnat", to: "199.181.132.250" }, "raw", "prerouting"));
});

test("NOTRACK only in raw", () => {
  hasError(one("notrack", "filter", "input"), "notrack_raw_only", "/chains/c/rules/0/action");
  valid(one("notrack", "raw", "prerouting", { protocol: "tcp", dport: 6667 }));
});

test("SNAT/masquerade only in nat postrouting, also through user chains", () => {
  hasError(one({ type: "masquerade" }, "nat", "prerouting"), "snat_placement", "/chains/c/rules/0/action");
  hasError(
    one({ type: "snat", to: { address: "192.0.2.1" } }, "filter", "forward"),
    "snat_placement",
    "/chains/c/rules/0/action",
  );
  const viaUser = {
    chains: {
      pre: { table: "nat", hook: "prerouting", rules: [{ action: { type: "jump", chain: "sn" } }] },
      sn: { table: "nat", rules: [{ action: { type: "masquerade" } }] },
    },
  };
  hasError(viaUser, "snat_placement", "/chains/sn/rules/0/action");
  valid(one({ type: "masquerade" }, "nat", "postrouting", { oif: "eth0" }));
});

test("DNAT/REDIRECT only in nat prerouting/output", () => {
  hasError(
    one({ type: "dnat", to: { address: "10.0.0.2" } }, "nat", "postrouting"),
    "dnat_placement",
    "/chains/c/rules/0/action",
  );
  hasError(
    one({ type: "redirect", port: 3128 }, "nat", "input", { protocol: "tcp", dport: 80 }),
    "dnat_placement",
    "/chains/c/rules/0/action",
  );
  valid(
    one({ type: "dnat", to: { address: "10.0.0.2", port: 8080 } }, "nat", "prerouting", { protocol: "tcp", dport: 80 }),
  );
});

test("NETMAP only in nat", () => {
  hasError(
    one({ type: "netmap", to: "10.1.0.0/16" }, "mangle", "prerouting"),
    "netmap_placement",
    "/chains/c/rules/0/action",
  );
  hasError(one({ type: "netmap", to: "10.1.0.0/16" }, "nat", "input"), "netmap_placement", "/chains/c/rules/0/action");
});

test("REJECT only in filter input/forward/output", () => {
  hasError(one({ type: "reject" }, "mangle", "prerouting"), "reject_placement", "/chains/c/rules/0/action");
  valid(one({ type: "reject", with: "tcp-reset" }, "filter", "input", { protocol: "tcp" }));
});

test("STEAL outside output is a warning", () => {
  hasWarning(one({ type: "steal" }, "filter", "input"), "steal_outside_output", "/chains/c/rules/0/action");
});

test("SYSRQ needs udp and should be restricted", () => {
  hasError(one({ type: "sysrq" }, "filter", "input"), "sysrq_needs_udp", "/chains/c/rules/0/action");
  hasWarning(
    one({ type: "sysrq" }, "filter", "input", { protocol: "udp", dport: 9 }),
    "sysrq_unrestricted",
    "/chains/c/rules/0/action",
  );
});

test("a placement error names the hooks, and the chain when a user chain is reached from them", () => {
  const messages = (doc: unknown) => validatePolicy(doc).errors.map((d) => `${d.code} ${d.path}: ${d.message}`);
  assert.deepEqual(messages(one({ type: "masquerade" }, "nat", "prerouting")), [
    "snat_placement /chains/c/rules/0/action: masquerade is not allowed at the prerouting hook: masquerading happens in nat postrouting (or a nat user chain reached only from there)",
  ]);
  const viaUser = {
    chains: {
      pre: { table: "nat", hook: "prerouting", rules: [{ action: { type: "jump", chain: "sn" } }] },
      sn: { table: "nat", rules: [{ action: { type: "masquerade" } }] },
    },
  };
  assert.deepEqual(messages(viaUser), [
    'snat_placement /chains/sn/rules/0/action: masquerade is not allowed at the prerouting hook (chain "sn" is reached from there): masquerading happens in nat postrouting (or a nat user chain reached only from there)',
  ]);
});
