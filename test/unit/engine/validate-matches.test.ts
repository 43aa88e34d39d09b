import { test } from "node:test";
import assert from "node:assert/strict";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { chain, hasError, hasWarning, valid } from "../../support/validate.ts";

const m = (match: unknown, action: unknown = "accept", opts: Parameters<typeof chain>[1] = {}) =>
  chain([{ match, action }], opts);

test("ports need a port protocol, not negated", () => {
  hasError(m({ dport: 22 }), "port_without_protocol", "/chains/c/rules/0/match/dport");
  hasError(m({ protocol: "icmp", sport: 22 }), "port_without_protocol", "/chains/c/rules/0/match/sport");
  hasError(m({ protocol: { not: "tcp" }, dport: 22 }), "port_without_protocol", "/chains/c/rules/0/match/dport");
  valid(m({ protocol: "sctp", dport: [22, "1000-2000"] }));
});

test("tcpFlags need tcp; ICMP types need their protocol", () => {
  hasError(
    m({ protocol: "udp", tcpFlags: { mask: ["syn"], compare: ["syn"] } }),
    "tcp_flags_without_tcp",
    "/chains/c/rules/0/match/tcpFlags",
  );
  hasError(m({ icmpType: "echo-request" }), "icmp_type_without_icmp", "/chains/c/rules/0/match/icmpType");
  hasError(
    m({ protocol: "icmp", icmpv6Type: "echo-request" }),
    "icmpv6_type_without_icmpv6",
    "/chains/c/rules/0/match/icmpv6Type",
  );
  // ip6tables -p icmp (next header 1) and iptables -p ipv6-icmp: valid, the lint says what was likely meant.
  hasWarning(m({ family: "ipv6", protocol: "icmp" }), "icmp_other_family", "/chains/c/rules/0/match/protocol");
  hasWarning(m({ family: "ipv4", protocol: "icmpv6" }), "icmp_other_family", "/chains/c/rules/0/match/protocol");
  hasError(
    m({ family: "ipv6", protocol: "icmp", icmpType: "echo-request" }),
    "icmp_type_family_mismatch",
    "/chains/c/rules/0/match/icmpType",
  );
});

test("family ipv4 with an IPv6 address; mixed families without family are fine", () => {
  hasError(
    m({ family: "ipv4", saddr: ["10.0.0.0/8", "2001:db8::/32"] }),
    "address_family_mismatch",
    "/chains/c/rules/0/match/saddr/1",
  );
  valid(m({ saddr: ["10.0.0.0/8", "2001:db8::/32"] }));
});

test("host bits set in a prefix, with the corrected prefix in the message", () => {
  hasError(m({ saddr: "10.0.0.1/8" }), "address_host_bits", "/chains/c/rules/0/match/saddr");
  const msg = validatePolicy(m({ daddr: { not: "2001:db8::1/32" } })).errors[0]!;
  assert.equal(msg.code, "address_host_bits");
  assert.equal(msg.path, "/chains/c/rules/0/match/daddr/not");
  assert.match(msg.message, /2001:db8::\/32/);
  assert.match(validatePolicy(m({ saddr: "10.0.0.1/8" })).errors[0]!.message, /10\.0\.0\.0\/8/);
});

test("iif not in output/postrouting, oif not in prerouting/input (also via user chains)", () => {
  hasError(m({ iif: "eth0" }, "accept", { hook: "output" }), "iif_not_available", "/chains/c/rules/0/match/iif");
  hasError(m({ oif: "eth0" }, "accept", { hook: "input" }), "oif_not_available", "/chains/c/rules/0/match/oif");
  const viaUser = {
    chains: {
      o: { hook: "output", rules: [{ action: { type: "jump", chain: "u" } }] },
      u: { rules: [{ match: { iif: "lo" }, action: "accept" }] },
    },
  };
  hasError(viaUser, "iif_not_available", "/chains/u/rules/0/match/iif");
  valid(m({ iif: "eth0", oif: "eth1" }, "accept", { hook: "forward" }));
});

test("socket owner only where packets have a local socket (output, postrouting); ranges of the rule's family", () => {
  valid(m({ skuid: 0 }, "accept", { hook: "output" }));
  hasError(m({ skuid: 0 }, "accept", { hook: "input" }), "socket_owner_not_available", "/chains/c/rules/0/match/skuid");
  hasError(
    m({ family: "ipv6", saddrRange: "10.0.0.1-10.0.0.9" }),
    "address_family_mismatch",
    "/chains/c/rules/0/match/saddrRange",
  );
  assert.equal(validatePolicy(m({ saddrRange: "10.0.0.9-10.0.0.1" })).ok, false, "first <= last");
});

test("icmpCode needs exactly one positive ICMP type", () => {
  valid(m({ protocol: "icmp", icmpType: "destination-unreachable", icmpCode: 4 }));
  hasError(
    m({ protocol: "icmp", icmpType: ["destination-unreachable", "redirect"], icmpCode: 1 }),
    "icmp_code_needs_one_type",
    "/chains/c/rules/0/match/icmpCode",
  );
  hasError(
    m({ protocol: "icmp", icmpType: { not: "redirect" }, icmpCode: 1 }),
    "icmp_code_needs_one_type",
    "/chains/c/rules/0/match/icmpCode",
  );
  hasError(m({ protocol: "icmp", icmpCode: 1 }), "icmp_code_needs_one_type", "/chains/c/rules/0/match/icmpCode");
});

test("a user chain shared by a hook with the interface and one without: a warning, the iptables meaning", () => {
  // Docker's nat DOCKER chain: jumped to from prerouting and output, holds `-i docker0 -j RETURN`.
  const docker = {
    chains: {
      pre: { table: "nat", hook: "prerouting", rules: [{ action: { type: "jump", chain: "DOCKER" } }] },
      out: { table: "nat", hook: "output", rules: [{ action: { type: "jump", chain: "DOCKER" } }] },
      DOCKER: { table: "nat", rules: [{ match: { iif: "docker0" }, action: "return" }] },
    },
  };
  const r = validatePolicy(docker);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.path]),
    [["iif_not_available", "/chains/DOCKER/rules/0/match/iif"]],
  );
  assert.match(r.warnings[0]!.message, /never matches at the output hook/);
  // The mirror case (OpenVPN-AS): oif in a chain reached from input and forward.
  const vpn = {
    chains: {
      i: { hook: "input", rules: [{ action: { type: "jump", chain: "AS" } }] },
      f: { hook: "forward", rules: [{ action: { type: "jump", chain: "AS" } }] },
      AS: { rules: [{ match: { oif: "as0t0" }, action: "accept" }] },
    },
  };
  assert.deepEqual(validatePolicy(vpn).errors, []);
});

test("ranges low <= high outside the schema's port lists", () => {
  hasError(m({ length: "1500-40" }), "invalid_range", "/chains/c/rules/0/match/length");
  hasError(
    chain([{ match: { protocol: "tcp" }, action: { type: "dnat", to: { address: "10.0.0.1", port: "90-80" } } }], {
      table: "nat",
      hook: "prerouting",
    }),
    "invalid_range",
    "/chains/c/rules/0/action/to/port",
  );
  hasError(
    { forwarding: { rangeForwards: [{ protocol: "tcp", ports: "2000-1000", to: "10.0.0.9" }] } },
    "invalid_range",
    "/forwarding/rangeForwards/0/ports",
  );
});

test("recent seconds/hitcount only with update/rcheck", () => {
  hasError(
    m({ recent: { name: "l", mode: "set", seconds: 60 } }),
    "recent_option_needs_check",
    "/chains/c/rules/0/match/recent/seconds",
  );
  valid(m({ recent: { name: "l", mode: "update", seconds: 1, hitcount: 60 } }, "drop"));
});

test("one recent list checked with two different windows is valid (nftables: one set per window)", () => {
  valid(
    chain([
      { match: { recent: { name: "l", mode: "rcheck", seconds: 60 } }, action: "drop" },
      { match: { recent: { name: "l", mode: "update", seconds: 30 } }, action: "drop" },
    ]),
  );
});

test("IPMARK shift beyond an IPv4 address; andMask 0 warns", () => {
  hasError(
    chain([{ match: { family: "ipv4" }, action: { type: "ipmark", addr: "src", shift: 32 } }], {
      table: "mangle",
      hook: "prerouting",
    }),
    "ipmark_shift_too_large",
    "/chains/c/rules/0/action/shift",
  );
  hasWarning(
    chain([{ action: { type: "ipmark", addr: "src", andMask: 0 } }], { table: "mangle", hook: "prerouting" }),
    "ipmark_constant_mark",
    "/chains/c/rules/0/action/andMask",
  );
  valid(
    chain(
      [{ match: { saddr: "2001:db8::/32" }, action: { type: "ipmark", addr: "src", shift: 16, andMask: 0xffff } }],
      { table: "mangle", hook: "prerouting" },
    ),
  );
});

test("TEE gateway 0.0.0.0 / :: refused", () => {
  hasError(
    chain([{ action: { type: "tee", gateway: "0.0.0.0" } }], { table: "mangle", hook: "prerouting" }),
    "tee_gateway_unspecified",
    "/chains/c/rules/0/action/gateway",
  );
  hasError(
    chain([{ action: { type: "tee", gateway: "::" } }], { table: "mangle", hook: "prerouting" }),
    "tee_gateway_unspecified",
    "/chains/c/rules/0/action/gateway",
  );
});

test("NAT needs something to translate to", () => {
  hasError(
    chain([{ action: { type: "dnat", to: {} } }], { table: "nat", hook: "prerouting" }),
    "nat_target_empty",
    "/chains/c/rules/0/action/to",
  );
});

test("iface needs exactly one selector; fuzzy limits ordered", () => {
  hasError(
    m({ xt: { iface: { devIn: true, devOut: true, flags: [{ flag: "up" }] } } }),
    "iface_selector",
    "/chains/c/rules/0/match/xt/iface",
  );
  hasError(
    m({ xt: { fuzzy: { lowerLimit: 100, upperLimit: 10 } } }),
    "invalid_range",
    "/chains/c/rules/0/match/xt/fuzzy",
  );
});

test("connmark set needs a value", () => {
  hasError(chain([{ action: { type: "connmark", op: "set" } }]), "missing_field", "/chains/c/rules/0/action/value");
});

test("iptables LOG prefixes are limited to 29 characters", () => {
  const doc = chain([{ action: { type: "log", prefix: "x".repeat(40) } }]);
  hasError(doc, "log_prefix_too_long", "/chains/c/rules/0/action/prefix", "iptables");
  assert.equal(validatePolicy(doc, { target: "nftables" }).ok, true);
});

test("ipsec: direction in not at output/postrouting, out not at prerouting/input; protocol needs policy ipsec; esp is not tested on nftables (warning), ah refused there", () => {
  hasError(
    m({ ipsec: { direction: "in", policy: "ipsec" } }, "accept", { hook: "output" }),
    "ipsec_direction_not_available",
    "/chains/c/rules/0/match/ipsec/direction",
  );
  hasError(
    m({ ipsec: { direction: "out", policy: "none" } }, "accept", { hook: "input" }),
    "ipsec_direction_not_available",
    "/chains/c/rules/0/match/ipsec/direction",
  );
  hasError(
    m({ ipsec: { direction: "in", policy: "none", protocol: "esp" } }, "accept", { hook: "forward" }),
    "invalid_value",
    "/chains/c/rules/0/match/ipsec/protocol",
  );
  valid(m({ ipsec: { direction: "in", policy: "ipsec" } }, "accept", { hook: "forward" }));
  valid(m({ ipsec: { direction: "out", policy: "ipsec" } }, "accept", { hook: "postrouting", table: "nat" }));
  const esp = m({ ipsec: { direction: "in", policy: "ipsec", protocol: "esp" } }, "accept", { hook: "forward" });
  const nft = validatePolicy(esp, { target: "nftables" });
  assert.equal(nft.ok, true);
  assert.deepEqual(
    nft.warnings.filter((w) => w.code === "ipsec_protocol_not_tested").map((w) => w.path),
    ["/chains/c/rules/0/match/ipsec/protocol"],
  );
  assert.equal(
    validatePolicy(esp, { target: "iptables" }).warnings.filter((w) => w.code === "ipsec_protocol_not_tested").length,
    0,
  );
  hasError(
    m({ ipsec: { direction: "in", policy: "ipsec", protocol: "ah" } }, "accept", { hook: "forward" }),
    "unsupported_on_target",
    "/chains/c/rules/0/match/ipsec/protocol",
    "nftables",
  );
  assert.equal(
    validatePolicy(m({ ipsec: { direction: "in", policy: "ipsec", protocol: "ah" } }, "accept", { hook: "forward" }), {
      target: "iptables",
    }).ok,
    true,
  );
});

test("ipsec tunnel endpoints: policy ipsec, one family, the rule's family, no host bits", () => {
  const t = (ipsec: unknown, extra: Record<string, unknown> = {}) =>
    m({ ...extra, ipsec: { direction: "in", policy: "ipsec", ...(ipsec as object) } }, "accept", { hook: "input" });
  valid(t({ tunnelSrc: "192.0.2.1", tunnelDst: { not: "198.51.100.0/24" } }));
  valid(t({ tunnelDst: "2001:db8::1" }, { saddr: ["2001:db8:1::/48", "10.0.0.0/8"] }));
  hasError(
    m({ ipsec: { direction: "in", policy: "none", tunnelSrc: "192.0.2.1" } }, "accept", { hook: "input" }),
    "invalid_value",
    "/chains/c/rules/0/match/ipsec/policy",
  );
  hasError(
    t({ tunnelSrc: "192.0.2.1", tunnelDst: "2001:db8::1" }),
    "invalid_value",
    "/chains/c/rules/0/match/ipsec/tunnelDst",
  );
  hasError(
    t({ tunnelSrc: "192.0.2.1" }, { family: "ipv6" }),
    "address_family_mismatch",
    "/chains/c/rules/0/match/ipsec/tunnelSrc",
  );
  hasError(
    t({ tunnelDst: { not: "192.0.2.1" } }, { saddr: "2001:db8::/32" }),
    "address_family_mismatch",
    "/chains/c/rules/0/match/ipsec/tunnelDst/not",
  );
  hasError(t({ tunnelSrc: "192.0.2.1/24" }), "address_host_bits", "/chains/c/rules/0/match/ipsec/tunnelSrc");
});

test("physdev: oif/isOut at output only with isBridged (xt_physdev refuses them there otherwise); refused on nftables", () => {
  for (const physdev of [{ oif: "vmnet1" }, { isOut: false }, { oif: "vmnet1", isBridged: false }])
    hasError(
      m({ physdev }, "accept", { hook: "output" }),
      "physdev_out_not_available",
      `/chains/c/rules/0/match/physdev/${"oif" in physdev ? "oif" : "isOut"}`,
    );
  valid(m({ physdev: { oif: "vmnet1", isBridged: true } }, "accept", { hook: "output" }));
  valid(m({ physdev: { oif: "vmnet1" } }, "accept", { hook: "postrouting", table: "mangle" }));
  valid(m({ physdev: { iif: "vmnet*", isIn: true } }, "accept", { hook: "output" }));
  hasError(m({ physdev: {} }, "accept", { hook: "forward" }), "invalid_value", "/chains/c/rules/0/match/physdev");
  hasError(
    m({ physdev: { iif: "vmnet1" } }, "accept", { hook: "forward" }),
    "unsupported_on_target",
    "/chains/c/rules/0/match/physdev",
    "nftables",
  );
});

test("a mark or connmark value never loses bits to its mask in silence; save/restore take no value", () => {
  hasError(
    m({}, { type: "mark", value: 0x11, mask: 0xf0 }),
    "mark_value_outside_mask",
    "/chains/c/rules/0/action/value",
  );
  hasError(
    m({}, { type: "connmark", op: "set", value: 0x100, mask: 0xff }),
    "mark_value_outside_mask",
    "/chains/c/rules/0/action/value",
  );
  hasError(
    m({}, { type: "connmark", op: "save", value: 1 }),
    "connmark_value_unused",
    "/chains/c/rules/0/action/value",
  );
  hasError(
    m({}, { type: "connmark", op: "restore", value: 1, mask: 0xff }),
    "connmark_value_unused",
    "/chains/c/rules/0/action/value",
  );
  valid(m({}, { type: "mark", value: 0x10, mask: 0xf0 }));
  valid(m({}, { type: "mark", value: 0x11 }));
  valid(m({}, { type: "connmark", op: "restore", mask: 0xff }));
});

test("the hook checks' messages name the hooks, the chain reached from them, and why", () => {
  const messages = (doc: unknown) => validatePolicy(doc).errors.map((d) => `${d.code} ${d.path}: ${d.message}`);
  // Base chains: the hook itself.
  assert.deepEqual(messages(m({ skuid: 0 }, "accept", { hook: "input" })), [
    "socket_owner_not_available /chains/c/rules/0/match/skuid: skuid cannot match at the input hook: only locally generated packets have a socket owner (output, postrouting)",
  ]);
  assert.deepEqual(messages(m({ socket: {} }, "accept", { hook: "output" })), [
    "socket_not_available /chains/c/rules/0/match/socket: socket cannot match at the output hook: the kernel's socket match only runs at prerouting and input, for packets arriving at this host",
  ]);
  // A user chain: every hook it is reached from that cannot, sorted, and the chain named.
  const reached = {
    chains: {
      f: { hook: "forward", rules: [{ action: { type: "jump", chain: "u" } }] },
      o: { hook: "output", rules: [{ action: { type: "jump", chain: "u" } }] },
      p: { hook: "postrouting", table: "mangle", rules: [{ action: { type: "jump", chain: "v" } }] },
      u: { rules: [{ match: { skgid: 0, macSource: "02:00:00:00:00:01", socket: {} }, action: "accept" }] },
      v: { table: "mangle", rules: [{ match: { macSource: "02:00:00:00:00:01" }, action: "accept" }] },
    },
  };
  assert.deepEqual(messages(reached).sort(), [
    'mac_not_available /chains/u/rules/0/match/macSource: macSource cannot match at the output hook (chain "u" is reached from there): a packet has a link-layer source only at prerouting, input and forward (iptables refuses -m mac elsewhere too)',
    'mac_not_available /chains/v/rules/0/match/macSource: macSource cannot match at the postrouting hook (chain "v" is reached from there): a packet has a link-layer source only at prerouting, input and forward (iptables refuses -m mac elsewhere too)',
    'socket_not_available /chains/u/rules/0/match/socket: socket cannot match at the forward/output hook (chain "u" is reached from there): the kernel\'s socket match only runs at prerouting and input, for packets arriving at this host',
    'socket_owner_not_available /chains/u/rules/0/match/skgid: skgid cannot match at the forward hook (chain "u" is reached from there): only locally generated packets have a socket owner (output, postrouting)',
  ]);
});

test("the interface, ipsec direction and physdev checks name the chain reached from the hook too", () => {
  const messages = (doc: unknown) => {
    const r = validatePolicy(doc);
    return [...r.errors, ...r.warnings].map((d) => `${d.code} ${d.path}: ${d.message}`).sort();
  };
  const match = { iif: "lo", ipsec: { direction: "in", policy: "ipsec" }, physdev: { oif: "vmnet1" } };
  // Base chain: the hook itself.
  assert.deepEqual(messages(m(match, "accept", { hook: "output" })), [
    "iif_not_available /chains/c/rules/0/match/iif: iif cannot match at the output hook: locally generated and outgoing packets have no input interface; use oif",
    "ipsec_direction_not_available /chains/c/rules/0/match/ipsec/direction: ipsec direction in cannot be tested at the output hook: a locally generated packet was not decapsulated; use direction out or move the rule",
    "physdev_out_not_available /chains/c/rules/0/match/physdev/oif: physdev oif/isOut cannot be tested at the output hook without isBridged: true: a locally generated packet's bridge port is not chosen there (iptables refuses --physdev-out and --physdev-is-out in OUTPUT without --physdev-is-bridged); add isBridged: true or move the rule to postrouting",
  ]);
  // User chains: u from output only (errors), w from input and forward (oif: the warning).
  const reached = {
    chains: {
      o: { hook: "output", rules: [{ action: { type: "jump", chain: "u" } }] },
      i: { hook: "input", rules: [{ action: { type: "jump", chain: "w" } }] },
      f: { hook: "forward", rules: [{ action: { type: "jump", chain: "w" } }] },
      u: { rules: [{ match, action: "accept" }] },
      w: { rules: [{ match: { oif: "eth0" }, action: "accept" }] },
    },
  };
  assert.deepEqual(messages(reached), [
    'iif_not_available /chains/u/rules/0/match/iif: iif cannot match at the output hook (chain "u" is reached from there): locally generated and outgoing packets have no input interface; use oif',
    'ipsec_direction_not_available /chains/u/rules/0/match/ipsec/direction: ipsec direction in cannot be tested at the output hook (chain "u" is reached from there): a locally generated packet was not decapsulated; use direction out or move the rule',
    'oif_not_available /chains/w/rules/0/match/oif: oif never matches at the input hook (chain "w" is reached from there): the output interface is not chosen yet (a negated oif always matches there)',
    'physdev_out_not_available /chains/u/rules/0/match/physdev/oif: physdev oif/isOut cannot be tested at the output hook (chain "u" is reached from there) without isBridged: true: a locally generated packet\'s bridge port is not chosen there (iptables refuses --physdev-out and --physdev-is-out in OUTPUT without --physdev-is-bridged); add isBridged: true or move the rule to postrouting',
  ]);
});
