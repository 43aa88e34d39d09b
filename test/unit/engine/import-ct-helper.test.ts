// Conntrack helpers: `-j CT --helper NAME` as action ctHelper: import (the kernel's helper
// names, case and all), validation (raw prerouting/output only; the helper's protocol),
// the iptables render, and the nftables render (a ct helper object in the table and
// `ct helper set` in a chain after conntrack, priority -199).
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";
import { serialize, Transaction } from "../../../src/engine/nft/index.ts";
import type { PolicyInput } from "../../../src/engine/policy/index.ts";
import { ipv4Rules } from "./import-ipv6-pass.ts";

const imp = (line: string) => importPolicy("iptables", `iptables -t raw -A PREROUTING ${line}`);

test("CT --helper NAME imports as ctHelper for each of the kernel's helpers", () => {
  const r = imp("-d 192.168.0.50/32 -p tcp -m tcp --dport 2121 -j CT --helper ftp");
  assert.deepEqual(r.errors, []);
  // An IPv4 address makes the rule IPv4's: no IPv6 pass rule before it.
  assert.deepEqual(r.policy?.chains.raw_prerouting?.rules, [
    {
      match: { daddr: "192.168.0.50", protocol: "tcp", dport: 2121 },
      action: { type: "ctHelper", helper: "ftp" },
    },
  ]);
  for (const [helper, proto] of [
    ["tftp", "udp"],
    ["sip", "udp"],
    ["sip", "tcp"],
    ["irc", "tcp"],
    ["pptp", "tcp"],
    ["RAS", "udp"],
    ["Q.931", "tcp"],
    ["amanda", "udp"],
    ["snmp", "udp"],
    ["netbios-ns", "udp"],
    ["sane", "tcp"],
  ] as const) {
    const x = imp(`-p ${proto} -j CT --helper ${helper}`);
    assert.deepEqual(x.errors, [], helper);
    assert.deepEqual(validatePolicy(x.policy).errors, [], `${helper} on ${proto}`);
  }
});

test("CT --helper: a name the kernel has no helper for is refused as iptables-restore refuses it (case matters; h323 is RAS and Q.931)", () => {
  for (const name of ["nosuch", "FTP", "h323", "constructor", "__proto__"]) {
    const e = imp(`-p tcp -j CT --helper ${name}`).errors;
    assert.equal(e.length, 1, name);
    assert.equal(e[0]!.code, "import_invalid_value");
    assert.match(e[0]!.message, /not a conntrack helper of the kernel/);
  }
});

test("CT --helper with another CT option stays refused; CT --notrack is unchanged", () => {
  const e = imp("-p tcp -j CT --helper ftp --zone 1").errors;
  assert.equal(e[0]!.code, "import_unsupported");
  assert.match(e[0]!.message, /--zone/);
  assert.equal(imp("-p tcp -j CT --helper ftp --ctevents new").errors[0]!.code, "import_unsupported");
  assert.deepEqual(ipv4Rules(imp("-p tcp -j CT --notrack").policy?.chains.raw_prerouting?.rules)[0]!.action, "notrack");
});

test("validation: the helper's protocol is needed (ftp on udp, no -p, ! -p tcp are ENOENT in the kernel)", () => {
  for (const line of [
    "-p udp -j CT --helper ftp",
    "-j CT --helper ftp",
    "! -p tcp -j CT --helper ftp",
    "-p tcp -j CT --helper tftp",
  ]) {
    const r = imp(line);
    assert.deepEqual(r.errors, [], line);
    const v = validatePolicy(r.policy).errors;
    assert.deepEqual(
      v.map((d) => d.code),
      ["ct_helper_protocol"],
      line,
    );
  }
});

const policy = (
  table: "raw" | "mangle" | "filter",
  hook: "prerouting" | "output" | "input" | undefined,
  extra: PolicyInput["chains"] = {},
): PolicyInput => ({
  chains: {
    c: {
      table,
      ...(hook ? { hook } : {}),
      rules: [{ match: { protocol: "tcp", dport: 21 }, action: { type: "ctHelper", helper: "ftp" } }],
    },
    ...extra,
  },
});

test("validation: raw prerouting/output (and raw user chains reached only from them); elsewhere EINVAL as iptables-restore measured", () => {
  assert.deepEqual(validatePolicy(policy("raw", "prerouting")).errors, []);
  assert.deepEqual(validatePolicy(policy("raw", "output")).errors, []);
  for (const [table, hook] of [
    ["mangle", "prerouting"],
    ["filter", "input"],
  ] as const) {
    const codes = validatePolicy(policy(table, hook)).errors.map((d) => d.code);
    assert.ok(codes.includes("ct_helper_raw_only"), `${table} ${hook}: ${codes.join(",")}`);
  }
  const user = validatePolicy(
    policy("raw", undefined, {
      pre: { table: "raw", hook: "prerouting", rules: [{ action: { type: "jump", chain: "c" } }] },
    }),
  );
  assert.deepEqual(user.errors, []);
});

test("iptables render: -j CT --helper NAME in the raw table", () => {
  const v = validatePolicy(policy("raw", "prerouting"));
  const r = renderIptables(v.policy!);
  assert.ok(r.ok);
  assert.match(r.text, /^-A PAL-c -p tcp -m tcp --dport 21 -j CT --helper ftp$/m);
  assert.match(r.text6, /^-A PAL-c -p tcp -m tcp --dport 21 -j CT --helper ftp$/m);
});

test("nftables render: a ct helper object per helper and protocol, ct helper set in ct_helper_<hook> at priority -199", () => {
  const r = imp("-p tcp --dport 2121 -j CT --helper ftp");
  const x = importPolicy(
    "iptables-save",
    "*raw\n-A PREROUTING -p tcp --dport 2121 -j CT --helper ftp\n-A PREROUTING -p udp --dport 5060 -j CT --helper sip\n-A PREROUTING -p tcp --dport 5060 -j CT --helper sip\n-A OUTPUT -p udp --dport 1719 -j CT --helper RAS\nCOMMIT\n",
  );
  assert.deepEqual(x.errors, []);
  for (const p of [r.policy, x.policy]) {
    const v = validatePolicy(p, { target: "nftables" });
    assert.deepEqual(v.errors, []);
  }
  const v = validatePolicy(x.policy, { target: "nftables" });
  const n = renderNft(v.policy!);
  assert.ok(n.ok, JSON.stringify(!n.ok && n.errors));
  assert.match(
    n.text,
    /^add table inet palisade \{ ct helper helper_ftp_tcp \{ type "ftp" protocol tcp ; l3proto inet ; \} ; ct helper helper_sip_udp \{ type "sip" protocol udp ; l3proto inet ; \} ; ct helper helper_sip_tcp \{ type "sip" protocol tcp ; l3proto inet ; \} ; ct helper helper_ras_udp \{ type "RAS" protocol udp ; l3proto inet ; \} ; \}$/m,
  );
  assert.match(
    n.text,
    /^add chain inet palisade ct_helper_prerouting \{ type filter hook prerouting priority -199 ; policy accept ; \}$/m,
  );
  assert.match(
    n.text,
    /^add chain inet palisade ct_helper_output \{ type filter hook output priority -199 ; policy accept ; \}$/m,
  );
  // The importer's IPv6 pass rule comes first in raw; the moved rule keeps IPv6 out of the helper.
  assert.match(
    n.text,
    /^add rule inet palisade ct_helper_prerouting meta nfproto ipv4 tcp dport 2121 ct helper set "helper_ftp_tcp"/m,
  );
  assert.match(
    n.text,
    /^add rule inet palisade ct_helper_output meta nfproto ipv4 udp dport 1719 ct helper set "helper_ras_udp"/m,
  );
  assert.doesNotMatch(n.text, /^add rule inet palisade raw_prerouting .*ct helper/m);
});

test("nftables render refuses what a chain of its own cannot mean: a rule after an accept, a user chain", () => {
  const afterAccept = validatePolicy({
    chains: {
      c: {
        table: "raw",
        hook: "prerouting",
        rules: [
          { match: { saddr: "10.0.0.0/8" }, action: "accept" },
          { match: { protocol: "tcp", dport: 21 }, action: { type: "ctHelper", helper: "ftp" } },
        ],
      },
    },
  });
  assert.deepEqual(afterAccept.errors, []);
  const a = renderNft(afterAccept.policy!);
  assert.ok(!a.ok);
  assert.deepEqual(
    a.errors.map((d) => d.code),
    ["nft_ct_helper_order"],
  );
  // A drop or a notrack before it changes nothing: the packet is gone or untracked.
  const dropFirst = validatePolicy({
    chains: {
      c: {
        table: "raw",
        hook: "prerouting",
        rules: [
          { match: { saddr: "10.0.0.0/8" }, action: "drop" },
          { match: { protocol: "udp", dport: 53 }, action: "notrack" },
          { match: { protocol: "tcp", dport: 21 }, action: { type: "ctHelper", helper: "ftp" } },
        ],
      },
    },
  });
  assert.ok(renderNft(dropFirst.policy!).ok);
  const user = validatePolicy(
    policy("raw", undefined, {
      pre: { table: "raw", hook: "prerouting", rules: [{ action: { type: "jump", chain: "c" } }] },
    }),
  );
  const u = renderNft(user.policy!);
  assert.ok(!u.ok);
  assert.deepEqual(
    u.errors.map((d) => d.code),
    ["nft_ct_helper_chain"],
  );
});

test("serialize checks a ct helper's type and protocol", () => {
  const tx = (type: string, protocol: string) =>
    serialize(
      new Transaction().add({
        kind: "table",
        family: "inet",
        name: "palisade",
        ctHelpers: [{ name: "h", type, protocol: protocol as "tcp" }],
      }),
    );
  assert.equal(
    tx("Q.931", "tcp"),
    'add table inet palisade { ct helper h { type "Q.931" protocol tcp ; l3proto inet ; } ; }\n',
  );
  assert.throws(() => tx('ftp" ; flush ruleset', "tcp"));
  assert.throws(() => tx("ftp", "sctp"));
});
