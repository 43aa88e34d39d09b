// Names that reach nft text are refused when the policy is validated for nftables (the
// agent, the API's render, `validate --target nftables`), not first by the render on an
// agent; iptables and no target take them. Sets named like those the agent fills (it reads
// them by their shape) are refused whatever the target, the push's validation included.
import { test } from "node:test";
import assert from "node:assert/strict";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/index.ts";
import { conditions, geoip, importPolicy } from "../../../src/engine/index.ts";

const input = (rules: unknown[], extra: object = {}) =>
  ({ chains: { input: { hook: "input", rules } }, ...extra }) as PolicyInput;

/** One policy per kind of named object, its name `name`, each used by a rule. */
const named = (name: string): Record<string, PolicyInput> => ({
  sets: input([{ match: { saddr: `@${name}` }, action: "drop" }], {
    sets: { [name]: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
  }),
  chains: {
    chains: { [name]: { rules: [] }, input: { hook: "input", rules: [{ action: { type: "jump", chain: name } }] } },
  } as PolicyInput,
  counters: input([{ action: { type: "counter", name } }], { counters: { [name]: {} } }),
  quotas: input([{ match: { quota: { name } }, action: "accept" }], { quotas: { [name]: { limit: 1000 } } }),
});
const NFT = { target: "nftables" } as const;
const what = { sets: "set", chains: "chain", counters: "counter", quotas: "quota" } as const;

test("a set, chain, counter or quota named like an nft keyword is refused at validation, naming it and its path", () => {
  for (const name of ["drop", "counter", "TCP", "log", "set"]) {
    for (const [key, doc] of Object.entries(named(name))) {
      // The name reaches nft text: the nft render refuses it (the agent would, after the push).
      const parsed = Policy.parse(doc);
      assert.equal(renderNft(parsed).ok, false, `${key} ${name}: the render takes it`);
      const v = validatePolicy(doc, NFT);
      assert.equal(v.ok, false, `${key} ${name} passes validation`);
      const e = v.errors.find((d) => d.code === "name_is_nft_keyword");
      assert.ok(e, JSON.stringify(v.errors));
      assert.equal(e.path, `/${key}/${name}`);
      assert.match(e.message, new RegExp(`^${what[key as keyof typeof what]} name "${name}" is an nft keyword`));
    }
  }
  // Protocol field names are context words nft reads as names where a name stands: accepted.
  for (const name of ["saddr", "dport", "state", "web"]) {
    for (const [key, doc] of Object.entries(named(name))) {
      const v = validatePolicy(doc, NFT);
      assert.ok(v.ok, `${key} ${name}: ${JSON.stringify(v.errors)}`);
      assert.ok(renderNft(v.policy!).ok, `${key} ${name}`);
    }
  }
});

test("a policy set named like a geoip country set or a condition set is refused at validation, whatever the target", () => {
  // The clash: without a geoip match the set compiles as the user's own, under a name the
  // agent takes for a country set (it reads the kernel's sets by their names) and fills with
  // that country's ranges in place of the user's elements; a condition set is emptied or
  // filled with { ipv4, ipv6 } as the condition is switched.
  const own = input([{ match: { saddr: "@geo_v4_CN" }, action: "drop" }], {
    sets: { geo_v4_CN: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
  });
  const r = renderNft(Policy.parse(own));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.ok(r.text.includes("add set inet palisade geo_v4_CN "));
  assert.deepEqual(geoip.geoOfSet("geo_v4_CN"), { family: "ipv4", country: "CN" });
  assert.equal(conditions.conditionOfSet("condition_maint"), "maint");
  // With a geoip match on the same country, only the render refused it (nft_name_clash).
  const withGeo = input([{ match: { xt: { geoip: { source: ["CN"] } } }, action: "drop" }], {
    sets: { geo_v4_CN: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
  });
  for (const [doc, name, pattern] of [
    [own, "geo_v4_CN", /geoip match's set for CN \(IPv4\)/],
    [withGeo, "geo_v4_CN", /geoip match's set for CN \(IPv4\)/],
    [
      input([{ match: { daddr: "@geo_v6_DE" }, action: "drop" }], {
        sets: { geo_v6_DE: { type: "ipv6_addr", elements: ["2001:db8::1"] } },
      }),
      "geo_v6_DE",
      /geoip match's set for DE \(IPv6\)/,
    ],
    [
      input([{ match: { saddr: "@condition_maint" }, action: "drop" }], {
        sets: { condition_maint: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
      }),
      "condition_maint",
      /set of condition "maint"/,
    ],
  ] as const) {
    for (const opts of [NFT, { target: "iptables" } as const, {}]) {
      const v = validatePolicy(doc, opts);
      assert.equal(v.ok, false, `${name} passes validation with ${JSON.stringify(opts)}`);
      const e = v.errors.filter((d) => d.code === "set_name_reserved");
      assert.equal(e.length, 1, JSON.stringify(v.errors));
      assert.equal(e[0]!.path, `/sets/${name}`);
      assert.match(e[0]!.message, pattern);
      assert.match(
        e[0]!.message,
        new RegExp(`^set name "${name}" has the prefix "${name.replace(/[A-Z]{2}$|maint$/, "")}" reserved`),
      );
    }
  }
  // Names that only look alike are the user's.
  for (const name of ["geo_v4_cn", "geo_v4_CNX", "geo_CN", "conditions"]) {
    const v = validatePolicy(
      input([{ match: { saddr: `@${name}` }, action: "drop" }], {
        sets: { [name]: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
      }),
      NFT,
    );
    assert.ok(v.ok, `${name}: ${JSON.stringify(v.errors)}`);
  }
});

test("imported ipsets named like nft keywords, country sets or condition sets are renamed and validate", () => {
  const save = [
    "create drop hash:net family inet",
    "add drop 192.0.2.0/24",
    "create geo_v4_CN hash:net family inet",
    "add geo_v4_CN 198.51.100.0/24",
    "create condition_x hash:ip family inet",
    "add condition_x 203.0.113.7",
  ].join("\n");
  const src = [
    "*filter",
    "-A INPUT -m set --match-set drop src -j DROP",
    "-A INPUT -m set --match-set geo_v4_CN src -j DROP",
    "-A INPUT -m set --match-set condition_x src -j DROP",
    "COMMIT",
    "",
  ].join("\n");
  const r = importPolicy("iptables-save", src, { ipsets: save });
  assert.deepEqual(r.errors, []);
  assert.ok(r.policy);
  assert.deepEqual(Object.keys(r.policy.sets).sort(), ["ipset_condition_x", "ipset_drop", "ipset_geo_v4_CN"]);
  const reasons = r.report.map((l) => l.reason ?? "").join("\n");
  assert.match(reasons, /ipset drop is the policy set ipset_drop \(drop is an nft keyword\)/);
  assert.match(
    reasons,
    /ipset geo_v4_CN is the policy set ipset_geo_v4_CN \(geo_v4_CN is the geoip match's set for CN/,
  );
  assert.match(
    reasons,
    /ipset condition_x is the policy set ipset_condition_x \(condition_x is the set of condition "x"/,
  );
  const v = validatePolicy(r.policy, NFT);
  assert.ok(v.ok, JSON.stringify(v.errors));
  assert.ok(renderNft(v.policy!).ok);
});

test("an imported quota2 counter named like an nft keyword becomes q_NAME, said once in the report; another q_NAME is a conflict", () => {
  const r = importPolicy(
    "iptables",
    "-A INPUT -m quota2 --name drop --quota 100 -j ACCEPT\n-A OUTPUT -m quota2 --name drop -j ACCEPT\n",
  );
  assert.deepEqual(r.errors, []);
  assert.ok(r.policy);
  assert.deepEqual(Object.keys(r.policy.quotas), ["q_drop"]);
  assert.deepEqual(
    r.report.map((l) => l.reason ?? ""),
    ["quota2 counter drop is the policy quota q_drop (drop is an nft keyword)", ""],
  );
  const v = validatePolicy(r.policy, NFT);
  assert.ok(v.ok, JSON.stringify(v.errors));
  assert.ok(renderNft(v.policy!).ok);
  for (const src of [
    "-A INPUT -m quota2 --name q_drop --quota 1 -j ACCEPT\n-A INPUT -m quota2 --name drop --quota 1 -j ACCEPT\n",
    "-A INPUT -m quota2 --name drop --quota 1 -j ACCEPT\n-A INPUT -m quota2 --name q_drop --quota 1 -j ACCEPT\n",
  ]) {
    const c = importPolicy("iptables", src);
    assert.equal(c.errors.length, 1, JSON.stringify(c.errors));
    assert.equal(c.errors[0]!.code, "import_conflict");
    assert.match(
      c.errors[0]!.message,
      /line 2: quota2 counters (drop and q_drop|q_drop and drop) would both be the policy quota q_drop/,
    );
  }
});

test("a chain named like a port-forwarding chain, or a counter named like a growing quota's, is refused at validation", () => {
  // The nft render takes these names for its own objects whatever the policy holds (and
  // always refused them); validation says so at the push.
  for (const [doc, path, code, pattern] of [
    [named("fwd_dnat").chains!, "/chains/fwd_dnat", "chain_name_reserved", /chain port forwarding compiles into/],
    [
      named("quota_web_grow_bytes").counters!,
      "/counters/quota_web_grow_bytes",
      "counter_name_reserved",
      /growing quota web/,
    ],
  ] as const) {
    assert.equal(renderNft(Policy.parse(doc)).ok, false, path);
    const v = validatePolicy(doc, NFT);
    assert.equal(v.ok, false, `${path} passes validation`);
    const e = v.errors.find((d) => d.code === code);
    assert.ok(e, JSON.stringify(v.errors));
    assert.equal(e.path, path);
    assert.match(e.message, pattern);
  }
});

test("an imported user chain named like a port-forwarding chain gets the table prefix and validates", () => {
  const r = importPolicy("iptables", "-N fwd_snat\n-A INPUT -j fwd_snat\n-A fwd_snat -j ACCEPT\n");
  assert.deepEqual(r.errors, []);
  assert.ok(r.policy);
  assert.ok(Object.hasOwn(r.policy.chains, "filter_fwd_snat"), Object.keys(r.policy.chains).join(","));
  const v = validatePolicy(r.policy, NFT);
  assert.ok(v.ok, JSON.stringify(v.errors));
  assert.ok(renderNft(v.policy!).ok);
});

test("the nft-only name checks do not run for iptables nor without a target", () => {
  const codes = ["name_is_nft_keyword", "set_name_reserved", "chain_name_reserved", "counter_name_reserved"];
  // A chain `import` and a set `mark` (nft keywords) rendered for iptables, and stored versions
  // validated without a target, before these checks: they still do.
  const doc = {
    sets: { mark: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
    chains: {
      import: { rules: [{ match: { saddr: "@mark" }, action: "drop" }] },
      input: { hook: "input", rules: [{ action: { type: "jump", chain: "import" } }] },
    },
  } as PolicyInput;
  const nft = validatePolicy(doc, NFT);
  assert.deepEqual(
    nft.errors.map((d) => [d.path, d.code]),
    [
      ["/chains/import", "name_is_nft_keyword"],
      ["/sets/mark", "name_is_nft_keyword"],
    ],
  );
  for (const opts of [{ target: "iptables" } as const, {}]) {
    const v = validatePolicy(doc, opts);
    assert.ok(v.ok, `${JSON.stringify(opts)}: ${JSON.stringify(v.errors)}`);
  }
  const r = renderIptables(validatePolicy(doc, { target: "iptables" }).policy!);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(r.text, /^-A PAL-import -m set --match-set pal_mark src -j DROP$/m);
  // The render's own chain and counter names too: iptables names its chains and counters
  // its own way.
  for (const d of [named("fwd_dnat").chains!, named("quota_web_grow_bytes").counters!]) {
    assert.ok(validatePolicy(d, NFT).errors.some((e) => codes.includes(e.code)));
    for (const opts of [{ target: "iptables" } as const, {}]) {
      const v = validatePolicy(d, opts);
      assert.ok(v.ok, `${JSON.stringify(opts)}: ${JSON.stringify(v.errors)}`);
    }
  }
});
