// Transparent proxying: `-m socket [--transparent] [--nowildcard] [--restore-skmark]` as match
// key `socket`, `-j TPROXY --on-port P [--on-ip A] [--tproxy-mark V[/M]]` as action `tproxy`:
// import, validation (xt_TPROXY/xt_socket's placement and protocol rules), both renders, and
// the nftables refusals where nft_socket cannot say what xt_socket says.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";
import type { PolicyInput, Rule } from "../../../src/engine/policy/index.ts";
import { ipv4Rules } from "./import-ipv6-pass.ts";

/** The one rule an iptables line in the mangle PREROUTING chain becomes. */
function rule(line: string): Rule {
  const r = importPolicy("iptables", `iptables -t mangle -A PREROUTING ${line}`);
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors));
  const rules = ipv4Rules(r.policy?.chains.mangle_prerouting?.rules);
  assert.equal(rules.length, 1);
  return rules[0]!;
}
const err = (line: string) => importPolicy("iptables", `iptables -t mangle -A PREROUTING ${line}`).errors;

test("-m socket imports each option as libxt_socket names it (--nowildcard is wildcard: true)", () => {
  assert.deepEqual(rule("-p tcp -m socket -j ACCEPT").match, { protocol: "tcp", socket: {} });
  assert.deepEqual(rule("-p tcp -m socket --transparent -j ACCEPT").match, {
    protocol: "tcp",
    socket: { transparent: true },
  });
  assert.deepEqual(rule("-m socket --nowildcard --transparent --restore-skmark -j ACCEPT").match, {
    socket: { transparent: true, wildcard: true, restoreMark: true },
  });
  assert.match(err("-m socket --bogus -j ACCEPT")[0]!.message, /--bogus/);
});

test("-j TPROXY: --on-port (a service name too), --on-ip, --tproxy-mark V (mask all ones) and V/M; iptables-save's 0.0.0.0 and 0x0/0x0 mean none", () => {
  assert.deepEqual(rule("-p tcp --dport 80 -j TPROXY --on-port 3129 --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1").action, {
    type: "tproxy",
    port: 3129,
    address: "127.0.0.1",
    mark: 1,
    mask: 1,
  });
  assert.deepEqual(rule("-p udp -j TPROXY --on-port 5353 --on-ip 0.0.0.0 --tproxy-mark 0x0/0x0").action, {
    type: "tproxy",
    port: 5353,
  });
  assert.deepEqual(rule("-p tcp -j TPROXY --on-port 0 --tproxy-mark 0x10").action, {
    type: "tproxy",
    port: 0,
    mark: 16,
  });
  assert.deepEqual(rule("-p tcp -j TPROXY --on-port http --tproxy-mark 0x0/0x1").action, {
    type: "tproxy",
    port: 80,
    mark: 0,
    mask: 1,
  });
  const missing = err("-p tcp -j TPROXY --on-ip 10.0.0.1");
  assert.equal(missing[0]!.code, "import_missing_argument");
  assert.match(missing[0]!.message, /TPROXY needs --on-port/);
  assert.equal(err("-p tcp -j TPROXY --on-port 1 --on-ip nope")[0]!.code, "import_invalid_value");
  assert.equal(err("-p tcp -j TPROXY --on-port 70000")[0]!.code, "import_invalid_value");
});

test("ip6tables-save: -m socket and TPROXY --on-ip ::1 (:: means none); an IPv4 --on-ip is refused as ip6tables-restore refuses it", () => {
  const save = (line: string) => `*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING ${line}\nCOMMIT\n`;
  const r = importPolicy(
    "iptables-save",
    save("-p tcp -m socket --transparent -m tcp --dport 80 -j TPROXY --on-port 3129 --on-ip ::1 --tproxy-mark 0x1/0x1"),
    { family: "ipv6" },
  );
  assert.deepEqual(r.errors, []);
  const rules = r.policy!.chains.mangle_prerouting!.rules;
  const last = rules[rules.length - 1]!;
  assert.deepEqual(last.action, { type: "tproxy", port: 3129, address: "::1", mark: 1, mask: 1 });
  assert.deepEqual((last.match as { socket?: unknown }).socket, { transparent: true });
  const none = importPolicy("iptables-save", save("-p udp -j TPROXY --on-port 53 --on-ip :: --tproxy-mark 0x0/0x0"), {
    family: "ipv6",
  });
  assert.deepEqual(none.errors, []);
  const nr = none.policy!.chains.mangle_prerouting!.rules;
  assert.deepEqual(nr[nr.length - 1]!.action, { type: "tproxy", port: 53 });
  const bad = importPolicy("iptables-save", save("-p tcp -j TPROXY --on-port 1 --on-ip 10.0.0.1"), { family: "ipv6" });
  assert.equal(bad.errors[0]?.code, "import_invalid_value");
  assert.match(bad.errors[0]!.message, /--on-ip 10\.0\.0\.1 is not an ipv6 address/);
});

const chains = (c: Record<string, unknown>): PolicyInput => ({ chains: c }) as PolicyInput;
const tp = { type: "tproxy", port: 3129 } as const;
const codes = (p: PolicyInput) => validatePolicy(p).errors.map((e) => [e.code, e.path]);

test("validation: TPROXY only in mangle prerouting (and user chains reached only from it), with protocol tcp or udp", () => {
  assert.deepEqual(
    codes(
      chains({ pre: { table: "mangle", hook: "prerouting", rules: [{ match: { protocol: "tcp" }, action: tp }] } }),
    ),
    [],
  );
  assert.deepEqual(
    codes(chains({ f: { table: "filter", hook: "input", rules: [{ match: { protocol: "tcp" }, action: tp }] } })),
    [["tproxy_placement", "/chains/f/rules/0/action"]],
  );
  assert.deepEqual(
    codes(chains({ o: { table: "mangle", hook: "output", rules: [{ match: { protocol: "udp" }, action: tp }] } })),
    [["tproxy_placement", "/chains/o/rules/0/action"]],
  );
  // A user chain reached from mangle output as well as prerouting (iptables-restore: Invalid argument).
  assert.deepEqual(
    codes(
      chains({
        pre: { table: "mangle", hook: "prerouting", rules: [{ action: { type: "jump", chain: "tp" } }] },
        out: { table: "mangle", hook: "output", rules: [{ action: { type: "jump", chain: "tp" } }] },
        tp: { table: "mangle", rules: [{ match: { protocol: "tcp" }, action: tp }] },
      }),
    ),
    [["tproxy_placement", "/chains/tp/rules/0/action"]],
  );
  for (const match of [{}, { protocol: "icmp" }, { protocol: { not: "tcp" } }])
    assert.deepEqual(
      codes(chains({ pre: { table: "mangle", hook: "prerouting", rules: [{ match, action: tp }] } })),
      [["tproxy_needs_protocol", "/chains/pre/rules/0/action"]],
      JSON.stringify(match),
    );
});

test("validation: socket matches at prerouting and input only (xt_socket's hooks)", () => {
  const at = (table: string, hook: string) =>
    codes(chains({ c: { table, hook, rules: [{ match: { socket: { wildcard: true } }, action: "accept" }] } }));
  assert.deepEqual(at("mangle", "prerouting"), []);
  assert.deepEqual(at("filter", "input"), []);
  assert.deepEqual(at("filter", "forward"), [["socket_not_available", "/chains/c/rules/0/match/socket"]]);
  assert.deepEqual(at("mangle", "output"), [["socket_not_available", "/chains/c/rules/0/match/socket"]]);
});

function policyOf(rules: unknown[]): PolicyInput {
  return chains({ pre: { table: "mangle", hook: "prerouting", rules } });
}

test("nftables: tproxy ip/ip6 to ADDRESS:PORT with the mark, then accept; a second rule drops what found no socket", () => {
  const v = validatePolicy(
    policyOf([
      { match: { protocol: "tcp", dport: 80 }, action: { ...tp, address: "127.0.0.1", mark: 1, mask: 1 } },
      { match: { protocol: "udp", dport: 53 }, action: { type: "tproxy", port: 0, mark: 0x10 } },
      { match: { protocol: "tcp", dport: 443 }, action: { type: "tproxy", port: 8443, address: "2001:db8::1" } },
      { match: { protocol: "tcp", socket: { transparent: true, wildcard: true } }, action: { type: "mark", value: 1 } },
      { match: { protocol: "tcp", socket: { wildcard: true } }, action: "accept" },
    ]),
  );
  assert.deepEqual(v.errors, []);
  const nft = renderNft(v.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  const body = (s: string) => s.replace(/^add rule inet palisade pre /, "").replace(/ comment .*$/, "");
  const rules = nft.text
    .split("\n")
    .filter((l) => l.startsWith("add rule inet palisade pre ") && !l.includes("failsafe"))
    .map(body);
  assert.deepEqual(rules, [
    "meta nfproto ipv4 tcp dport 80 tproxy ip to 127.0.0.1:3129 meta mark set meta mark & 0xfffffffe ^ 0x00000001 accept",
    "meta nfproto ipv4 tcp dport 80 drop",
    "meta nfproto ipv4 udp dport 53 tproxy ip to :0 meta mark set 0x00000010 accept",
    "meta nfproto ipv4 udp dport 53 drop",
    "meta nfproto ipv6 udp dport 53 tproxy ip6 to :0 meta mark set 0x00000010 accept",
    "meta nfproto ipv6 udp dport 53 drop",
    "meta nfproto ipv6 tcp dport 443 tproxy ip6 to [2001:db8::1]:8443 accept",
    "meta nfproto ipv6 tcp dport 443 drop",
    "meta l4proto tcp socket transparent 1 meta mark set 0x00000001",
    "meta l4proto tcp socket transparent 0-1 accept",
  ]);
});

test("nftables refuses socket without wildcard and restoreMark (nft_socket stops the rule for half-open and time-wait sockets), and tproxy with per-rule state", () => {
  const v = validatePolicy(
    policyOf([
      { match: { protocol: "tcp", socket: {} }, action: "accept" },
      { match: { protocol: "tcp", socket: { transparent: true } }, action: "accept" },
      { match: { protocol: "tcp", socket: { wildcard: true, restoreMark: true } }, action: "accept" },
    ]),
  );
  assert.deepEqual(v.errors, []);
  const nft = renderNft(v.policy!);
  assert.ok(!nft.ok);
  assert.deepEqual(
    nft.errors.map((e) => [e.code, e.path]),
    [
      ["unsupported_on_target", "/chains/pre/rules/0/match/socket"],
      ["unsupported_on_target", "/chains/pre/rules/1/match/socket"],
      ["unsupported_on_target", "/chains/pre/rules/2/match/socket/restoreMark"],
    ],
  );
  assert.match(nft.errors[0]!.message, /half-open or time-wait/);
  assert.match(nft.errors[2]!.message, /socket mark stops the rule/);
  // The validator refuses them too when asked for the target.
  assert.equal(validatePolicy(v.policy!, { target: "nftables" }).errors.length, 3);
  const limited = validatePolicy(policyOf([{ match: { protocol: "tcp", limit: { rate: "5/second" } }, action: tp }]));
  assert.deepEqual(limited.errors, []);
  const r = renderNft(limited.policy!);
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => e.code),
    ["nft_tproxy_stateful_match"],
  );
});

test("iptables: -m socket options and -j TPROXY as iptables-save writes them; an IPv6 address only in ip6tables", () => {
  const v = validatePolicy(
    policyOf([
      { match: { protocol: "tcp", socket: {} }, action: { type: "jump", chain: "divert" } },
      {
        match: { protocol: "tcp", socket: { transparent: true, wildcard: true, restoreMark: true } },
        action: "accept",
      },
      { match: { protocol: "tcp", dport: 80 }, action: { ...tp, address: "127.0.0.1", mark: 1, mask: 1 } },
      { match: { protocol: "udp" }, action: { type: "tproxy", port: 0, mark: 0x10 } },
      { match: { protocol: "tcp" }, action: { type: "tproxy", port: 1, address: "::1" } },
    ]),
  );
  // divert: a user chain
  const withDivert = {
    ...v.policy!,
    chains: { ...v.policy!.chains, divert: { table: "mangle" as const, rules: [{ action: "accept" as const }] } },
  };
  const w = validatePolicy(withDivert);
  assert.deepEqual(w.errors, []);
  const ipt = renderIptables(w.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  const lines = (t: string) => t.split("\n").filter((l) => l.startsWith("-A PAL-pre "));
  assert.deepEqual(lines(ipt.text), [
    "-A PAL-pre -p tcp -m socket -j PAL-divert",
    "-A PAL-pre -p tcp -m socket --transparent --nowildcard --restore-skmark -j ACCEPT",
    "-A PAL-pre -p tcp -m tcp --dport 80 -j TPROXY --on-port 3129 --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1",
    "-A PAL-pre -p udp -j TPROXY --on-port 0 --tproxy-mark 0x10/0xffffffff",
  ]);
  assert.deepEqual(lines(ipt.text6).slice(-2), [
    "-A PAL-pre -p udp -j TPROXY --on-port 0 --tproxy-mark 0x10/0xffffffff",
    "-A PAL-pre -p tcp -j TPROXY --on-port 1 --on-ip ::1",
  ]);
});

test("schema: tproxy needs a port of 0-65535; socket takes only its three flags", () => {
  const bad = (rules: unknown[]) => !validatePolicy(policyOf(rules)).ok;
  assert.ok(bad([{ match: { protocol: "tcp" }, action: { type: "tproxy" } }]));
  assert.ok(bad([{ match: { protocol: "tcp" }, action: { type: "tproxy", port: 65536 } }]));
  assert.ok(bad([{ match: { protocol: "tcp" }, action: { type: "tproxy", port: 1, address: "nope" } }]));
  assert.ok(bad([{ match: { socket: { nowildcard: true } }, action: "accept" }]));
  assert.ok(!bad([{ match: { socket: { transparent: true, wildcard: true, restoreMark: true } }, action: "accept" }]));
});

test("an iptables-save dump of a tproxy router round-trips through the iptables render", () => {
  const save = [
    "*mangle",
    ":PREROUTING ACCEPT [0:0]",
    ":DIVERT - [0:0]",
    "-A PREROUTING -p tcp -m socket -j DIVERT",
    "-A PREROUTING -p tcp -m socket --transparent -j MARK --set-xmark 0x1/0xffffffff",
    "-A PREROUTING -p tcp -m tcp --dport 80 -j TPROXY --on-port 3129 --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1",
    "-A DIVERT -j MARK --set-xmark 0x1/0xffffffff",
    "-A DIVERT -j ACCEPT",
    "COMMIT",
    "",
  ].join("\n");
  const r = importPolicy("iptables-save", save);
  assert.deepEqual(r.errors, []);
  const ipt = renderIptables(r.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  assert.match(ipt.text, /-A PAL-mangle_prerouting -p tcp -m socket -j PAL-DIVERT\n/);
  assert.match(ipt.text, /-p tcp -m socket --transparent -j MARK --set-xmark 0x1\/0xffffffff\n/);
  assert.match(
    ipt.text,
    /-p tcp -m tcp --dport 80 -j TPROXY --on-port 3129 --on-ip 127\.0\.0\.1 --tproxy-mark 0x1\/0x1\n/,
  );
});
