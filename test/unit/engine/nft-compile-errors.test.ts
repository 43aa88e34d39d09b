// What the nftables compiler refuses, and how it says so: every refusal is a Diagnostic
// with a JSON path, a stable code, and a message naming the feature, nftables, and what
// supports it instead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { compileNft, renderNft } from "../../../src/engine/compile/nft/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";

const errorsOf = (doc: PolicyInput) => {
  const r = renderNft(Policy.parse(doc));
  assert.ok(!r.ok, "expected a refusal");
  return r.errors;
};
const input = (rules: unknown[], extra: Record<string, unknown> = {}) =>
  ({ ...extra, chains: { input: { hook: "input", rules } } }) as PolicyInput;

test("xtables-addons targets and matches are refused naming the feature, nftables and the iptables target", () => {
  for (const action of [
    { type: "tarpit" },
    { type: "checksumFill" },
    { type: "chaos" },
    { type: "steal" },
    { type: "sysrq" },
    { type: "delude" },
  ]) {
    const errs = errorsOf(input([{ action }]));
    assert.equal(errs.length, 1, JSON.stringify(errs));
    assert.equal(errs[0]!.code, "unsupported_on_target");
    assert.equal(errs[0]!.path, "/chains/input/rules/0/action");
    assert.match(errs[0]!.message, /nftables/);
    assert.match(errs[0]!.message, /iptables/);
  }
  const errs = errorsOf(
    input([
      {
        match: {
          xt: { iface: { interface: "eth0", flags: [{ flag: "up" }] }, fuzzy: { lowerLimit: 1, upperLimit: 10 } },
        },
        action: "drop",
      },
    ]),
  );
  assert.deepEqual(errs.map((e) => e.path).sort(), [
    "/chains/input/rules/0/match/xt/fuzzy",
    "/chains/input/rules/0/match/xt/iface",
  ]);
  assert.ok(errs.every((e) => /nftables/.test(e.message) && /xtables-addons|iptables/.test(e.message)));
});

test("MIRROR and ECHO are refused with the reason", () => {
  for (const type of ["mirror", "echo"]) {
    const [e] = errorsOf(input([{ action: { type } }]));
    assert.match(e!.message, /reflection|back to its source/i);
  }
});

test("quota2 features nftables cannot express: --no-change on bytes, packet budgets beyond a bucket, one quota used both ways", () => {
  const noChange = errorsOf(
    input([{ match: { quota: { name: "q", noChange: true } }, action: "accept" }], { quotas: { q: { limit: 10 } } }),
  );
  assert.equal(noChange[0]!.path, "/chains/input/rules/0/match/quota/noChange");
  assert.match(noChange[0]!.message, /no-change.*nftables/i);
  for (const limit of [0, 30_501]) {
    const packets = errorsOf(input([], { quotas: { q: { mode: "packets", limit } } }));
    assert.equal(packets[0]!.path, "/quotas/q/limit");
    assert.equal(packets[0]!.code, "nft_quota_packets_limit");
  }
  assert.ok(renderNft(Policy.parse(input([], { quotas: { q: { mode: "packets", limit: 30_500 } } }))).ok);
  // With --no-change elsewhere, a counting rule is two rules: only a terminating action.
  const split = errorsOf(
    input(
      [
        { match: { quota: { name: "p" } }, action: { type: "log", prefix: "x" } },
        { match: { quota: { name: "p", noChange: true } }, action: "accept" },
      ],
      { quotas: { p: { mode: "packets", limit: 3 } } },
    ),
  );
  assert.equal(split[0]!.code, "nft_quota_no_change_action");
  const inverted = errorsOf(
    input(
      [
        { match: { quota: { name: "p", invert: true } }, action: "drop" },
        { match: { quota: { name: "p", noChange: true } }, action: "accept" },
      ],
      { quotas: { p: { mode: "packets", limit: 3 } } },
    ),
  );
  assert.equal(inverted[0]!.code, "nft_quota_no_change_inverted");
  const both = errorsOf(
    input(
      [
        { match: { quota: { name: "q" } }, action: "accept" },
        { match: { quota: { name: "q", invert: true } }, action: "drop" },
      ],
      { quotas: { q: { limit: 10 } } },
    ),
  );
  assert.ok(
    both.some((e) => /until.*over|inverted/i.test(e.message)),
    JSON.stringify(both),
  );
  // A packet-mode grow counter is fine: nft counters count packets and bytes.
  assert.ok(
    renderNft(
      Policy.parse(
        input([{ match: { quota: { name: "g" } }, action: "accept" }], {
          quotas: { g: { mode: "packets", grow: true } },
        }),
      ),
    ).ok,
  );
});

test("packet budgets: one bucket element; with --no-change, N-1 tokens then the spent flag; a growing counter's --no-change is nothing", () => {
  const r = renderNft(
    Policy.parse(
      input(
        [
          { match: { protocol: "udp", quota: { name: "p" } }, action: "accept" },
          { match: { quota: { name: "p", noChange: true } }, action: "accept" },
          { match: { quota: { name: "p", noChange: true, invert: true } }, action: "drop" },
          { match: { protocol: "tcp", quota: { name: "g", noChange: true } }, action: "accept" },
        ],
        { quotas: { p: { mode: "packets", limit: 3 }, g: { grow: true } } },
      ),
    ),
  );
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(r.text, /udp update @quota_p_packets \{ meta mark & 0x0 limit rate 1\/week burst 2 packets \} accept/);
  assert.match(r.text, /meta mark & 0x0 != @quota_p_spent add @quota_p_spent \{ meta mark & 0x0 \} accept/);
  assert.match(r.text, /input meta mark & 0x0 != @quota_p_spent accept/);
  assert.match(r.text, /input meta mark & 0x0 @quota_p_spent drop/);
  assert.match(r.text, /input meta l4proto tcp accept/);
  assert.doesNotMatch(r.text, /counter name "quota_g_grow_bytes" accept/);
});

test("a recent list checked with several --seconds gets one set per window, all stamped by set/update, all cleared by remove", () => {
  const r = renderNft(
    Policy.parse(
      input([
        { match: { saddr: "192.0.2.0/24", recent: { name: "l", mode: "set" } }, action: "return" },
        { match: { recent: { name: "l", mode: "rcheck", seconds: 10 } }, action: "drop" },
        { match: { recent: { name: "l", mode: "update", seconds: 20 } }, action: "drop" },
        { match: { recent: { name: "l", mode: "rcheck", seconds: 300 } }, action: "accept" },
        { match: { recent: { name: "l", mode: "remove" } }, action: "accept" },
      ]),
    ),
  );
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const line = (needle: string) => r.text.split("\n").filter((l) => l.includes(needle));
  // The longest window is the list's own set; each shorter one has its own.
  assert.match(r.text, /recent_l_v4 \{[^}]*timeout 300s/);
  assert.match(r.text, /recent_l_10s_v4 \{[^}]*timeout 10s/);
  assert.match(r.text, /recent_l_20s_v4 \{[^}]*timeout 20s/);
  const stamp =
    "update @recent_l_v4 { ip saddr } update @recent_l_10s_v4 { ip saddr } update @recent_l_20s_v4 { ip saddr }";
  assert.equal(line(`ip saddr 192.0.2.0/24 ${stamp}`).length, 1, r.text);
  assert.equal(line("ip saddr @recent_l_10s_v4 drop").length, 1, r.text);
  assert.equal(line(`ip saddr @recent_l_20s_v4 ${stamp} drop`).length, 1, r.text);
  assert.equal(line("ip saddr @recent_l_v4 accept").length, 1, r.text);
  assert.equal(
    line(
      "ip saddr @recent_l_v4 delete @recent_l_v4 { ip saddr } delete @recent_l_10s_v4 { ip saddr } delete @recent_l_20s_v4 { ip saddr } accept",
    ).length,
    1,
    r.text,
  );
});

test("IPv4-only and IPv6-only parts in one rule can never match", () => {
  const [e] = errorsOf(input([{ match: { saddr: "10.0.0.0/8", icmpv6Type: "echo-request" }, action: "drop" }]));
  assert.equal(e!.code, "nft_family_conflict");
});

test("a list mixing named sets with addresses is only split for verdicts, not for counters/accounting", () => {
  const sets = { a: { type: "ipv4_addr", elements: ["192.0.2.1"] } };
  const ok = renderNft(
    Policy.parse(input([{ match: { saddr: ["@a", "198.51.100.0/24"] }, action: "drop" }], { sets })),
  );
  assert.ok(ok.ok);
  assert.match(ok.text, /ip saddr 198\.51\.100\.0\/24 drop/);
  assert.match(ok.text, /ip saddr @a drop/);
  const [e] = errorsOf(
    input([{ match: { saddr: ["@a", "198.51.100.0/24"] }, action: { type: "counter", name: "c" } }], {
      sets,
      counters: { c: {} },
    }),
  );
  assert.equal(e!.code, "nft_mixed_address_list");
});

test("a limit or nth counter is refused where the rule splits per item: it would multiply the rate", () => {
  const geo = input([
    { match: { xt: { geoip: { source: ["CN", "RU"] } }, limit: { rate: "3/minute" } }, action: "accept" },
  ]);
  const [e] = errorsOf(geo);
  assert.equal(e!.code, "nft_stateful_alternatives");
  assert.equal(e!.path, "/chains/input/rules/0/match/limit");
  assert.match(e!.message, /one per country.*2 times the rate/);
  const sets = { a: { type: "ipv4_addr", elements: ["192.0.2.1"] } };
  const [n] = errorsOf(
    input([{ match: { saddr: ["@a", "198.51.100.0/24"], statistic: { mode: "nth", every: 3 } }, action: "drop" }], {
      sets,
    }),
  );
  assert.equal(n!.code, "nft_stateful_alternatives");
  // One country: one rule, nothing multiplied.
  assert.ok(
    renderNft(
      Policy.parse(
        input([{ match: { xt: { geoip: { source: ["CN"] } }, limit: { rate: "3/minute" } }, action: "accept" }]),
      ),
    ).ok,
  );
});

test("TEE needs a base chain and may not use the inet table's sets", () => {
  const doc = { chains: { user: { rules: [{ action: { type: "tee", gateway: "192.0.2.1" } }] } } } as PolicyInput;
  assert.ok(errorsOf(doc).some((e) => e.code === "nft_tee_needs_base_chain"));
  const withSet = {
    sets: { s: { type: "ipv4_addr", elements: ["192.0.2.9"] } },
    chains: {
      pre: {
        table: "mangle",
        hook: "prerouting",
        rules: [{ match: { saddr: "@s" }, action: { type: "tee", gateway: "192.0.2.1" } }],
      },
    },
  } as PolicyInput;
  assert.ok(errorsOf(withSet).some((e) => e.code === "nft_tee_match"));
});

test("chains, placements and references", () => {
  assert.ok(
    errorsOf({ chains: { r: { table: "raw", hook: "input", rules: [] } } } as PolicyInput).some(
      (e) => e.code === "nft_chain_hook",
    ),
  );
  assert.ok(
    errorsOf({ chains: { n: { table: "nat", hook: "forward", rules: [] } } } as PolicyInput).some(
      (e) => e.code === "nft_chain_hook",
    ),
  );
  assert.ok(
    errorsOf(input([{ action: { type: "jump", chain: "nowhere" } }])).some((e) => e.code === "nft_unknown_chain"),
  );
  assert.ok(
    errorsOf(input([{ action: { type: "rawsnat", to: "10.0.0.0/8" } }])).some((e) => e.code === "nft_rawnat_table"),
  );
  assert.ok(errorsOf(input([{ action: { type: "masquerade" } }])).some((e) => e.code === "nft_nat_table"));
  assert.ok(errorsOf(input([{ action: "notrack" }])).some((e) => e.code === "nft_notrack_table"));
  assert.ok(errorsOf({ chains: { fwd_dnat: { rules: [] } } } as PolicyInput).some((e) => e.code === "nft_name_clash"));
  // A chain named like an nft keyword cannot be written bare: refused, not mis-rendered.
  assert.ok(
    errorsOf({ chains: { counter: { rules: [] } } } as PolicyInput).some((e) => e.code === "nft_invalid_identifier"),
  );
  // A user set with the name of a generated one.
  const clash = errorsOf(
    input([{ match: { recent: { name: "x", mode: "set" } }, action: "accept" }], {
      sets: { recent_x_v4: { type: "ipv4_addr" } },
    }),
  );
  assert.ok(
    clash.some((e) => e.code === "nft_name_clash"),
    JSON.stringify(clash),
  );
});

test("IPv6 IPMARK with an unaligned shift is refused and says what supports it", () => {
  const [e] = errorsOf({
    chains: {
      m: {
        table: "mangle",
        hook: "prerouting",
        rules: [{ match: { family: "ipv6" }, action: { type: "ipmark", addr: "src", shift: 4 } }],
      },
    },
  } as PolicyInput);
  assert.equal(e!.code, "nft_ipmark_shift");
  assert.match(e!.message, /iptables/);
});

test("a bad failsafe endpoint from the agent is refused, not rendered", () => {
  const r = compileNft(Policy.parse(input([])), { failsafe: { apiAddresses: ["10.0.0.1; flush ruleset"] } });
  assert.ok(!r.ok && r.errors[0]!.code === "nft_failsafe_address");
  const p = compileNft(Policy.parse(input([])), { failsafe: { apiPort: 70000 } });
  assert.ok(!p.ok && p.errors[0]!.code === "nft_failsafe_port");
});

test("a user counter may not take the name shape of a growing quota's counter", () => {
  const [e, ...rest] = errorsOf(input([], { counters: { quota_bt_grow_bytes: {} } }));
  assert.equal(rest.length, 0);
  assert.equal(e!.code, "nft_name_reserved");
  assert.equal(e!.path, "/counters/quota_bt_grow_bytes");
  assert.match(e!.message, /growing quota/);
  // A counter and a growing quota may share a name: they are different kernel objects.
  assert.ok(
    renderNft(
      Policy.parse(
        input([{ match: { quota: { name: "bt" } }, action: "accept" }], {
          counters: { bt: {} },
          quotas: { bt: { grow: true } },
        }),
      ),
    ).ok,
  );
});

test("recent hitcount: bounded on nftables (H <= 1024, seconds given and <= a week, no meter/quota/statistic beside it)", () => {
  // The counting idiom (set rule with the same matches first): only the bounds are at issue here.
  const hc = (recent: Record<string, unknown>, more: Record<string, unknown> = {}) =>
    input(
      [
        { match: { ...more, recent: { name: "syn", mode: "set" } }, action: { type: "counter", name: "seen" } },
        { match: { ...more, recent: { name: "syn", mode: "update", ...recent } }, action: "drop" },
      ],
      { counters: { seen: {} } },
    );
  const one = (doc: PolicyInput) => {
    const errs = errorsOf(doc);
    assert.equal(errs.length, 1, JSON.stringify(errs));
    assert.equal(errs[0]!.code, "unsupported_on_target");
    return errs[0]!;
  };
  assert.ok(renderNft(Policy.parse(hc({ seconds: 1, hitcount: 1024 }))).ok);
  const big = one(hc({ seconds: 1, hitcount: 1025 }));
  assert.equal(big.path, "/chains/input/rules/1/match/recent/hitcount");
  assert.match(big.message, /at most 1024/);
  // A larger count tracks fewer sources: 2^23 slot elements per counter and family.
  const sizes = (text: string) => [
    ...new Set([...text.matchAll(/recent_syn_\S* \{[^}]*size (\d+)/g)].map((m) => m[1])),
  ];
  const r128 = renderNft(Policy.parse(hc({ seconds: 1, hitcount: 128 })));
  assert.ok(r128.ok);
  assert.deepEqual(sizes(r128.text), ["65536"]);
  const r1024 = renderNft(Policy.parse(hc({ seconds: 1, hitcount: 1024 })));
  assert.ok(r1024.ok);
  assert.deepEqual(sizes(r1024.text), ["8192"]);
  assert.equal(one(hc({ hitcount: 5 })).path, "/chains/input/rules/1/match/recent/seconds");
  assert.equal(one(hc({ seconds: 8 * 86400, hitcount: 5 })).path, "/chains/input/rules/1/match/recent/seconds");
  // A limit on the set rule too: it stamps only the packets its bucket lets through, which
  // the count (of every packet reaching the hit-count rule) would not see.
  assert.match(
    one(hc({ seconds: 1, hitcount: 5 }, { limit: { rate: "5/second" } })).message,
    /set rule at chains\.input\.rules\[0\] is not in the same chain before this rule with the same matches/,
  );
  // A random draw or nth counter beside a counted rule would be drawn twice (jump, then rule).
  const coin = { statistic: { mode: "random", probability: 0.5 } };
  assert.match(one(hc({ seconds: 1, hitcount: 5 }, coin)).message, /meter, quota or statistic/);
  // A list counted where it is stamped: the set rules carry the jump, so they are refused too.
  const same = { protocol: "tcp", dport: 22, ...coin };
  const stamped = errorsOf(
    input([
      { match: { ...same, recent: { name: "p", mode: "set" } }, action: "accept" },
      { match: { ...same, recent: { name: "p", mode: "rcheck", seconds: 60, hitcount: 4 } }, action: "drop" },
    ]),
  ).find((e) => e.path === "/chains/input/rules/0/match/recent")!;
  assert.ok(stamped, "the set rule of a stamp-counted list with a random draw was not refused");
  assert.match(stamped.message, /recent set on list "p" together with limit, meter, quota or statistic/);
  // The SYN-flood preset counts exactly up to 127 per window; beyond that it needs a burst (token bucket).
  const v = validatePolicy({ protections: { synFlood: { rate: "128/second" } } });
  assert.deepEqual(
    v.errors.map((e) => [e.path, e.code]),
    [["/protections/synFlood/rate", "syn_flood_rate_too_high"]],
  );
  assert.ok(validatePolicy({ protections: { synFlood: { rate: "128/second", burst: 128 } } }).ok);
  assert.ok(renderNft(Policy.parse({ protections: { synFlood: { rate: "127/second" } } })).ok);
});

test("recent hitcount on nftables: only the counting idiom (the list's set rules, same chain, same matches, before it); a knock list is refused", () => {
  const seen = { type: "counter", name: "seen" };
  const inp = (rules: unknown[]) => input(rules, { counters: { seen: {} } });
  const knockSet = {
    comment: "knock",
    match: { protocol: "tcp", dport: 1234, recent: { name: "knock", mode: "set" } },
    action: seen,
  };
  const sshCheck = {
    comment: "ssh",
    match: { protocol: "tcp", dport: 22, recent: { name: "knock", mode: "rcheck", seconds: 30, hitcount: 3 } },
    action: "accept",
  };
  const knock = inp([knockSet, sshCheck]);
  const errs = errorsOf(knock);
  assert.deepEqual(
    errs.map((e) => [e.path, e.code]),
    [["/chains/input/rules/1/match/recent/hitcount", "unsupported_on_target"]],
  );
  assert.match(errs[0]!.message, /this rule's own packets, not on the stamps/);
  assert.match(errs[0]!.message, /portKnock preset/);
  assert.match(errs[0]!.message, /same matches/);
  assert.match(errs[0]!.message, /For the set rule at chains\.input\.rules\[0\]: give it this rule's matches/);
  assert.doesNotMatch(errs[0]!.message, /move it into chain|this rule's side/);
  // The validator refuses it for nftables too, and iptables (xt_recent counts stamps natively) takes it.
  const v = validatePolicy(knock, { target: "nftables" });
  assert.ok(
    v.errors.some(
      (e) => e.path === "/chains/input/rules/1/match/recent/hitcount" && e.code === "unsupported_on_target",
    ),
    JSON.stringify(v.errors),
  );
  assert.ok(validatePolicy(knock, { target: "iptables" }).ok);
  // No set rule at all, in another chain, or on another side: refused.
  const count = {
    match: { protocol: "tcp", dport: 22, recent: { name: "l", mode: "update", seconds: 1, hitcount: 3 } },
    action: "drop",
  };
  const set = { match: { protocol: "tcp", dport: 22, recent: { name: "l", mode: "set" } }, action: seen };
  assert.equal(errorsOf(inp([count])).length, 1);
  assert.match(
    errorsOf(inp([count]))[0]!.message,
    /no rule sets the list\. .*Add a rule with recent set on list "l" and this rule's other matches, in chain input before this rule/,
  );
  const otherSide = { ...set, match: { ...set.match, recent: { ...set.match.recent, side: "destination" } } };
  assert.match(errorsOf(inp([otherSide, count]))[0]!.message, /: give it this rule's side \(source\); or render/);
  // The set rule after a counted rule that lets the packet go on (not check-then-stamp).
  assert.match(
    errorsOf(inp([{ ...count, action: seen }, set]))[0]!.message,
    /: move it into chain input, before this rule; or render/,
  );
  // A list only checked (`rcheck --hitcount` and no rule sets it: a game server's dump checks two
  // such lists) is counted where it is stamped, that is nowhere: accepted. The check tests only the
  // blocked set, which nothing fills, and no rule counts its own packets, so it matches no packet,
  // as xt_recent's list that nothing stamps stays empty.
  const checkedOnly = {
    match: { protocol: "tcp", dport: 30120, recent: { name: "m", mode: "rcheck", seconds: 30, hitcount: 4 } },
    action: "accept",
  };
  const unset = renderNft(Policy.parse(inp([checkedOnly])));
  assert.ok(unset.ok, JSON.stringify(!unset.ok && unset.errors));
  assert.match(unset.text, /tcp dport 30120 ip saddr @recent_m_v4 ip saddr @recent_m_hc4_30s_v4_blocked .*accept/);
  assert.doesNotMatch(unset.text, /jump recent_m_hc4_30s_v4/);
  assert.doesNotMatch(unset.text, /(update|add) @recent_m_v4 /);
  assert.ok(validatePolicy(inp([checkedOnly]), { target: "nftables" }).ok);
  // Check-then-stamp (the set rule right after an --update rule that drops): accepted, counted as
  // this packet and 3 earlier ones, without the list test (the first packet is not listed yet).
  const after = renderNft(Policy.parse(inp([count, set])));
  assert.ok(after.ok, JSON.stringify(!after.ok && after.errors));
  assert.match(after.text, /tcp dport 22 jump recent_l_hc4_1s_v4/);
  assert.match(after.text, /tcp dport 22 ip saddr @recent_l_hc4_1s_v4_blocked .*drop/);
  assert.doesNotMatch(after.text, /ip saddr @recent_l_v4 /);
  // ... but not with --rcheck (a matched packet is not stamped), an action that lets the packet
  // on to the set rule (stamped twice), a rule between the two, or a list used elsewhere too.
  const rcheck = { ...count, match: { ...count.match, recent: { ...count.match.recent, mode: "rcheck" } } };
  assert.equal(errorsOf(inp([rcheck, set])).length, 1);
  assert.equal(errorsOf(inp([{ ...count, action: seen }, set])).length, 1);
  assert.equal(errorsOf(inp([count, { action: seen }, set])).length, 1);
  assert.equal(
    errorsOf(inp([count, set, { match: { recent: { name: "l", mode: "rcheck", seconds: 1 } }, action: "drop" }]))
      .length,
    1,
  );
  assert.equal(
    errorsOf(inp([{ ...set, match: { ...set.match, recent: { name: "l", mode: "set", side: "destination" } } }, count]))
      .length,
    1,
  );
  assert.equal(
    errorsOf({
      counters: { seen: {} },
      chains: { input: { hook: "input", rules: [count] }, fwd: { hook: "forward", rules: [set] } },
    } as PolicyInput).length,
    1,
  );
  assert.ok(renderNft(Policy.parse(inp([set, count]))).ok);
  // A list that is only stamped (`set`) and checked (`rcheck`) is counted where it is stamped, so a
  // rule between that stops packets (another counted rule of the list that drops, as a real dump
  // has with 42 hits in 770 s, then 348 in 17123 s) does not hide their stamps: accepted. The set
  // rule jumps to a chain that counts in both counters; the checks only test the blocked sets.
  const shortCount = {
    match: { ...count.match, recent: { name: "l", mode: "rcheck", seconds: 1, hitcount: 2 } },
    action: "drop",
  };
  const longCount = {
    ...count,
    match: { ...count.match, recent: { ...count.match.recent, mode: "rcheck", seconds: 60 } },
  };
  const both = renderNft(Policy.parse(inp([set, shortCount, longCount])));
  assert.ok(both.ok, JSON.stringify(!both.ok && both.errors));
  assert.match(both.text, /tcp dport 22 update @recent_l_v4 \{ ip saddr \} jump recent_l_stamp_v4/);
  assert.match(both.text, /rule inet palisade recent_l_stamp_v4 jump recent_l_hc2_1s_v4/);
  assert.match(both.text, /rule inet palisade recent_l_stamp_v4 jump recent_l_hc3_60s_v4/);
  assert.match(both.text, /tcp dport 22 ip saddr @recent_l_v4 ip saddr @recent_l_hc2_1s_v4_blocked .*drop/);
  assert.doesNotMatch(both.text, /jump recent_l_hc3_60s_v4 comment "input rule/);
  // With a single counter the set rule jumps to its counting chain directly.
  const single = renderNft(Policy.parse(inp([set, { action: seen }, longCount])));
  assert.ok(single.ok);
  assert.match(single.text, /update @recent_l_v4 \{ ip saddr \} jump recent_l_hc3_60s_v4/);
  assert.doesNotMatch(single.text, /recent_l_stamp_v4/);
  // A list with an `update` rule (its stamp depends on its own outcome) is still counted at the
  // check: two counters on it are refused (the update's stamps count for the other counter),
  // and so is a rule between that may stop packets (below, a jump).
  const updBetween = errorsOf(inp([set, shortCount, count]));
  assert.deepEqual(
    updBetween.map((e) => e.path),
    ["/chains/input/rules/2/match/recent/hitcount"],
  );
  assert.match(updBetween[0]!.message, /--update stamps the list whenever it matches/);
  assert.equal(
    errorsOf({
      counters: { seen: {} },
      chains: {
        input: { hook: "input", rules: [set, { action: { type: "jump", chain: "x" } }, count] },
        x: { rules: [] },
      },
    } as PolicyInput).length,
    1,
  );
  assert.ok(renderNft(Policy.parse(inp([set, { action: seen }, count]))).ok);
  assert.ok(validatePolicy(inp([set, shortCount, longCount]), { target: "iptables" }).ok);
  // The SYN-flood idiom as plain rules (the seed's --set then --update --hitcount): accepted, and the
  // counted rules also require the source on the list.
  const syn = { protocol: "tcp", ctState: ["new"], tcpFlags: { mask: ["fin", "syn", "rst", "ack"], compare: ["syn"] } };
  const idiom = renderNft(
    Policy.parse(
      inp([
        { match: { ...syn, recent: { name: "synflood", mode: "set" } }, action: seen },
        { match: { ...syn, recent: { name: "synflood", mode: "update", seconds: 1, hitcount: 60 } }, action: "drop" },
      ]),
    ),
  );
  assert.ok(idiom.ok, JSON.stringify(!idiom.ok && idiom.errors));
  assert.match(idiom.text, /ip saddr @recent_synflood_v4 jump recent_synflood_hc60_1s_v4/);
  assert.match(idiom.text, /ip saddr @recent_synflood_v4 ip saddr @recent_synflood_hc60_1s_v4_blocked .*drop/);
  // And the preset, which expands to that idiom.
  const preset = renderNft(Policy.parse({ protections: { synFlood: { rate: "10/second" } } }));
  assert.ok(preset.ok, JSON.stringify(!preset.ok && preset.errors));
  assert.match(preset.text, /ip saddr @recent_protect_synflood_v4 jump recent_protect_synflood_hc11_1s_v4/);
});

test("a negated tcpMss (two nft rules) with a limit: refused, naming tcpMss and a fix that fits it", () => {
  const errs = errorsOf(
    input([
      {
        match: { protocol: "tcp", tcpMss: { not: "536-65535" }, limit: { rate: "5/second" } },
        action: "drop",
      },
    ]),
  );
  const e = errs.find((x) => x.code === "nft_stateful_alternatives");
  assert.ok(e, JSON.stringify(errs));
  assert.match(e.message, /negated tcpMss/);
  assert.match(e.message, /sets a mark/);
  assert.doesNotMatch(e.message, /addresses into one set/);
});
