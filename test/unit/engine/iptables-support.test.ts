// The support table: what each target refuses, with which message, and which
// xtables-addons modules an iptables rendering needs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy } from "../../../src/engine/policy/index.ts";
import {
  FEATURES,
  checkTargetSupport,
  requiredXtablesModules,
  featureUses,
  type Feature,
} from "../../../src/engine/compile/support.ts";
import { xtRecentMaxHitcount } from "../../../src/engine/compile/hitcount.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";

const p = (doc: unknown) => Policy.parse(doc);

test("TARPIT is refused on nftables with the module that supports it, accepted on iptables", () => {
  const pol = p({
    chains: {
      input: { hook: "input", rules: [{ match: { protocol: "tcp", dport: 80 }, action: { type: "tarpit" } }] },
    },
  });
  const nft = checkTargetSupport(pol, "nftables");
  assert.equal(nft.length, 1);
  assert.equal(nft[0]!.code, "unsupported_on_target");
  assert.equal(nft[0]!.path, "/chains/input/rules/0/action");
  assert.match(nft[0]!.message, /TARPIT/);
  assert.match(nft[0]!.message, /nftables/);
  assert.match(nft[0]!.message, /iptables.*xt_TARPIT/);
  assert.deepEqual(checkTargetSupport(pol, "iptables"), []);
  assert.deepEqual(requiredXtablesModules(pol), ["xt_TARPIT"]);
});

test("MIRROR and ECHO are unsupported on every target", () => {
  for (const f of ["action.mirror", "action.echo"] as Feature[]) {
    assert.equal(FEATURES[f].nftables.supported, false);
    assert.equal(FEATURES[f].iptables.supported, false);
  }
});

test("xt matches point at the match field; quota --no-change refused on nftables only", () => {
  const pol = p({
    quotas: { q: { limit: 1000 } },
    chains: {
      fwd: {
        hook: "forward",
        rules: [
          { match: { xt: { geoip: { source: ["DE"] } } }, action: "drop" },
          { match: { quota: { name: "q", noChange: true } }, action: "accept" },
        ],
      },
    },
  });
  const nft = checkTargetSupport(pol, "nftables").map((d) => d.path);
  // geoip is native on nftables (per-country sets, docs/geoip.md): only --no-change is refused.
  assert.deepEqual(nft, ["/chains/fwd/rules/1/match/quota/noChange"]);
  assert.deepEqual(checkTargetSupport(pol, "iptables"), []);
  assert.deepEqual(requiredXtablesModules(pol), ["xt_geoip", "xt_quota2"]);
});

test("iptables refuses negated lists, ECN flags, rpfilter outside raw/mangle prerouting", () => {
  const pol = p({
    chains: {
      input: {
        hook: "input",
        rules: [
          { match: { saddr: { not: ["10.0.0.1", "10.0.0.2"] } }, action: "drop" },
          { match: { protocol: "tcp", tcpFlags: { mask: ["ecn"], compare: [] } }, action: "drop" },
          { match: { rpfilter: "fail" }, action: "drop" },
        ],
      },
      pre: { table: "raw", hook: "prerouting", rules: [{ match: { rpfilter: "fail" }, action: "drop" }] },
    },
  });
  const paths = checkTargetSupport(pol, "iptables").map((d) => d.path);
  assert.deepEqual(paths, [
    "/chains/input/rules/0/match/saddr",
    "/chains/input/rules/1/match/tcpFlags",
    "/chains/input/rules/2/match/rpfilter",
  ]);
  assert.deepEqual(checkTargetSupport(pol, "nftables"), []);
});

test("packet quotas compile on nftables; mixed inversion is refused", () => {
  const pol = p({
    quotas: { pk: { mode: "packets", limit: 10 } },
    chains: {
      c: {
        rules: [
          { match: { quota: { name: "pk" } }, action: "accept" },
          { match: { quota: { name: "pk", invert: true } }, action: "drop" },
        ],
      },
    },
  });
  const paths = checkTargetSupport(pol, "nftables")
    .map((d) => d.path)
    .sort();
  assert.deepEqual(paths, ["/chains/c/rules/1/match/quota/invert"]);
});

test("a quota2 bytebucket (grow on a rule of a budget) is refused on nftables at the filling rule, rendered by iptables", () => {
  const pol = p({
    quotas: { bt: { limit: 0 } },
    chains: {
      input: { hook: "input", rules: [{ match: { quota: { name: "bt", grow: true } }, action: "accept" }] },
      output: { hook: "output", rules: [{ match: { quota: { name: "bt" } }, action: "accept" }] },
    },
  });
  const nft = checkTargetSupport(pol, "nftables");
  assert.deepEqual(
    nft.map((d) => [d.code, d.path]),
    [["unsupported_on_target", "/chains/input/rules/0/match/quota/grow"]],
  );
  assert.match(nft[0]!.message, /only consumes.*no rule can give bytes back/);
  assert.match(nft[0]!.message, /growing quota.*declare quotas\.NAME\.grow.*xt_quota2/);
  assert.deepEqual(checkTargetSupport(pol, "iptables"), []);
  assert.deepEqual(requiredXtablesModules(pol), ["xt_quota2"]);
  // The same rules with the quota growing everywhere: a plain growing counter, native on nftables.
  const grows = p({ ...structuredClone(pol), quotas: { bt: { grow: true } } });
  assert.deepEqual(checkTargetSupport(grows, "nftables"), []);
});

test("every feature use found maps to a table entry, and every table entry has a label", () => {
  for (const [k, e] of Object.entries(FEATURES)) assert.ok(e.label.length > 0, k);
  const pol = p({
    protections: { synFlood: {} },
    forwarding: { portForwards: [{ protocol: "tcp", port: 80, backends: [{ address: "10.0.0.2" }] }] },
  });
  assert.deepEqual(
    featureUses(pol).map((u) => u.feature),
    ["forward.portfw", "protection.synFlood"],
  );
});

test("LOGMARK to an NFLOG group needs no xtables-addons module; a rawpost chain needs xt_RAWNAT", () => {
  const pol = p({
    chains: {
      a: { hook: "input", rules: [{ action: { type: "logmark", prefix: "m", group: 3 } }] },
      b: { table: "rawpost", hook: "postrouting", rules: [{ action: "accept" }] },
    },
  });
  assert.deepEqual(requiredXtablesModules(pol), ["xt_RAWNAT"]);
  assert.deepEqual(checkTargetSupport(pol, "nftables"), []);
});

test("recent --hitcount on iptables: refused only above what the host's kernel accepts", () => {
  assert.equal(xtRecentMaxHitcount({ kernelRelease: "4.9.337" }).max, 20);
  assert.equal(xtRecentMaxHitcount({ kernelRelease: "4.10.0" }).max, 255);
  assert.equal(xtRecentMaxHitcount({ kernelRelease: "6.1.0-27-amd64" }).max, 255);
  assert.equal(xtRecentMaxHitcount({ kernelRelease: "6.18.44-fc-v1045" }).max, 65535);
  assert.equal(xtRecentMaxHitcount({}).max, 255);
  const pol = (hitcount: number) =>
    p({
      chains: {
        c: {
          hook: "input",
          rules: [{ match: { recent: { name: "syn", mode: "update", seconds: 1, hitcount } }, action: "drop" }],
        },
      },
    });
  // The seed's hitcount 60: fine without a host (Linux >= 4.10 assumed) and on this kernel.
  assert.deepEqual(checkTargetSupport(pol(60), "iptables"), []);
  assert.deepEqual(checkTargetSupport(pol(60), "iptables", { kernelRelease: "6.1.0" }), []);
  const old = checkTargetSupport(pol(60), "iptables", { kernelRelease: "4.9.337" });
  assert.deepEqual(
    old.map((d) => [d.path, d.code]),
    [["/chains/c/rules/0/match/recent/hitcount", "unsupported_on_target"]],
  );
  assert.match(old[0]!.message, /kernel 4\.9\.337 \(before 4\.10\).*20 by default/);
  assert.equal(checkTargetSupport(pol(300), "iptables", { kernelRelease: "6.1.0" }).length, 1);
  assert.deepEqual(checkTargetSupport(pol(300), "iptables", { kernelRelease: "6.18.44" }), []);
  assert.equal(checkTargetSupport(pol(65536), "iptables", { kernelRelease: "6.18.44" }).length, 1);
  // renderIptables decides from the same capabilities.
  assert.equal(renderIptables(pol(300), { capabilities: { kernelRelease: "6.1.0" } }).ok, false);
  assert.equal(renderIptables(pol(300), { capabilities: { kernelRelease: "6.18.44" } }).ok, true);
});

test("every nftables refusal says what the kernel lacks and what to use instead (no bare 'nftables has no X')", () => {
  for (const [name, entry] of Object.entries(FEATURES)) {
    const s = entry.nftables;
    if (s.supported) continue;
    assert.ok(!/^nftables has no\b/.test(s.reason), `${name}: ${s.reason}`);
    assert.ok(s.reason.length > 40, `${name}: the reason says too little: ${s.reason}`);
    assert.ok(s.alternative.length > 10, `${name}: no alternative`);
  }
});

test("natively rendered xtables-addons matches pass on nftables; the options nft_exthdr cannot find and length2 layer5 do not", () => {
  const rule = (xt: unknown, action: unknown = "drop") =>
    p({ chains: { input: { hook: "input", rules: [{ match: { protocol: "udp", xt }, action }] } } });
  for (const xt of [
    { ipv4options: { flags: [{ option: "record-route" }, { option: "lsrr", not: true }] } },
    { ipv4options: { flags: [{ option: "router-alert" }, { option: "ssrr" }], any: true } },
    { length2: { layer: "layer4", length: "10-20" } },
    { dhcpmac: "00:50:56:00:00:00/24" },
  ])
    assert.deepEqual(checkTargetSupport(rule(xt), "nftables"), [], JSON.stringify(xt));
  const other = checkTargetSupport(rule({ ipv4options: { flags: [{ option: "timestamp" }] } }), "nftables");
  assert.deepEqual(
    other.map((d) => d.path),
    ["/chains/input/rules/0/match/xt/ipv4options/flags"],
  );
  assert.match(other[0]!.message, /nft_exthdr.*lsrr, ssrr, record-route and router-alert/);
  const l5 = checkTargetSupport(rule({ length2: { layer: "layer5", length: 0 } }), "nftables");
  assert.deepEqual(
    l5.map((d) => d.path),
    ["/chains/input/rules/0/match/xt/length2/layer"],
  );
  assert.deepEqual(
    checkTargetSupport(rule(undefined, { type: "dhcpmac", setMac: "ab:cd:ef:00:00:00/24" }), "nftables"),
    [],
  );
});
