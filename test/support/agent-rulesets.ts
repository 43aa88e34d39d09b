// Ruleset texts for the agent's kernel tests, built with the engine's transaction model
// (replaceTables + serialize: the statement form the nft compiler emits). They carry
// the accounting shape of src/engine/compile/nft/accounting.ts: dynamic counted sets
// acct_T_src / acct_T_dst with per-direction totals acct_T_srctotal / acct_T_dsttotal
// (or, for 0.0.0.0/0, the one total acct_T_total), plus a quota and a counter, and
// optionally a growing quota (its counter, named as the compiler names it).

import { growCounterName } from "../../src/engine/index.ts";
import { ctHelperObjectName } from "../../src/engine/compile/nft/action.ts";
import { replaceTables, serialize, type Rule, type TableDefinition } from "../../src/engine/nft/index.ts";

const F = "inet" as const;
const T = "palisade";

export interface FixtureOptions {
  /** The /24 accounted per address. */
  lan: string;
  /** Extra rule bodies appended to the input chain (a "slightly changed" version). */
  extra?: string[];
  /** Quota budget in bytes. */
  quotaBytes?: number;
  /** Input chain policy. */
  policy?: "accept" | "drop";
  /** Add a second accounting table over 0.0.0.0/0 (the one-slot total). */
  withAll?: boolean;
  /** NFLOG group for a LOGMARK-like rule on UDP port 7777. */
  logGroup?: number;
  /** A growing byte quota of this name (quota2 --grow) counting every UDP packet. */
  growQuota?: string;
  /**
   * IPv6 accounting of UDP only (neighbour discovery from the same addresses would be
   * counted too, correctly, but is not what a test's sender counts): table lan6 per
   * address over this /64, and table net6 per /64 aggregate over `net6`.
   */
  lan6?: string;
  net6?: string;
  /** The input chain's priority (default 0): changing it forces a table replace. */
  priority?: number;
  /**
   * Conntrack helpers in the nftables compiler's shape: a `ct helper helper_TYPE_PROTO`
   * object each in the table's block, set by a rule for `dport` in chain
   * ct_helper_prerouting (filter, prerouting, priority -199).
   */
  ctHelpers?: { type: string; protocol: "tcp" | "udp"; dport: number }[];
}

export function fixtureDefinition(o: FixtureOptions): TableDefinition {
  const rule = (body: string, comment?: string, chain = "input"): Rule => ({
    kind: "rule",
    family: F,
    table: T,
    chain,
    body,
    ...(comment ? { comment } : {}),
  });
  const rules: Rule[] = [
    rule(`ip saddr ${o.lan} counter name "acct_lan_srctotal" add @acct_lan_src { ip saddr counter }`),
    rule(`ip daddr ${o.lan} counter name "acct_lan_dsttotal" add @acct_lan_dst { ip daddr counter }`),
  ];
  if (o.lan6) {
    rules.push(
      rule(
        `meta l4proto udp ip6 saddr ${o.lan6} counter name "acct_lan6_srctotal" add @acct_lan6_src { ip6 saddr counter }`,
      ),
    );
    rules.push(
      rule(
        `meta l4proto udp ip6 daddr ${o.lan6} counter name "acct_lan6_dsttotal" add @acct_lan6_dst { ip6 daddr counter }`,
      ),
    );
  }
  if (o.net6) {
    rules.push(
      rule(
        `meta l4proto udp ip6 saddr ${o.net6} counter name "acct_net6_srctotal" add @acct_net6_src { ip6 saddr & ffff:ffff:ffff:ffff:: counter }`,
      ),
    );
    rules.push(
      rule(
        `meta l4proto udp ip6 daddr ${o.net6} counter name "acct_net6_dsttotal" add @acct_net6_dst { ip6 daddr & ffff:ffff:ffff:ffff:: counter }`,
      ),
    );
  }
  if (o.withAll) rules.push(rule(`counter name "acct_all_total"`));
  rules.push(rule(`meta l4proto udp quota name "q1"`, "udp budget"));
  rules.push(rule(`meta l4proto udp counter name "udp_seen"`));
  if (o.growQuota) rules.push(rule(`meta l4proto udp counter name "${growCounterName(o.growQuota, "bytes")}"`));
  if (o.logGroup !== undefined) {
    rules.push(rule(`udp dport 7777 meta mark set 0x2a`));
    rules.push(rule(`udp dport 7777 log prefix "PAL mark: " group ${o.logGroup}`));
  }
  for (const b of o.extra ?? []) rules.push(rule(b));
  const helpers = (o.ctHelpers ?? []).map((h) => ({ ...h, name: ctHelperObjectName(h.type, h.protocol) }));
  for (const h of helpers)
    rules.push(rule(`${h.protocol} dport ${h.dport} ct helper set "${h.name}"`, undefined, "ct_helper_prerouting"));
  const set = (name: string, type = "ipv4_addr", comment?: string) => ({
    kind: "set" as const,
    family: F,
    table: T,
    name,
    type,
    flags: ["dynamic" as const],
    size: 256,
    counter: true,
    ...(comment ? { comment } : {}),
  });
  const totals = (t: string) => [
    { kind: "counter" as const, family: F, table: T, name: `acct_${t}_srctotal` },
    { kind: "counter" as const, family: F, table: T, name: `acct_${t}_dsttotal` },
  ];
  return {
    table: {
      kind: "table",
      family: F,
      name: T,
      ...(helpers.length
        ? { ctHelpers: helpers.map((h) => ({ name: h.name, type: h.type, protocol: h.protocol })) }
        : {}),
    },
    counters: [
      { kind: "counter", family: F, table: T, name: "acct_lan_srctotal" },
      { kind: "counter", family: F, table: T, name: "acct_lan_dsttotal" },
      ...(o.withAll ? [{ kind: "counter" as const, family: F, table: T, name: "acct_all_total" }] : []),
      ...(o.lan6 ? totals("lan6") : []),
      ...(o.net6 ? totals("net6") : []),
      { kind: "counter", family: F, table: T, name: "udp_seen" },
      ...(o.growQuota
        ? [{ kind: "counter" as const, family: F, table: T, name: growCounterName(o.growQuota, "bytes") }]
        : []),
    ],
    quotas: [{ kind: "quota", family: F, table: T, name: "q1", mode: "until", bytes: o.quotaBytes ?? 10_000_000 }],
    sets: [
      set("acct_lan_src"),
      set("acct_lan_dst"),
      ...(o.lan6 ? [set("acct_lan6_src", "ipv6_addr"), set("acct_lan6_dst", "ipv6_addr")] : []),
      ...(o.net6
        ? [set("acct_net6_src", "ipv6_addr", "aggregate /64"), set("acct_net6_dst", "ipv6_addr", "aggregate /64")]
        : []),
    ],
    chains: [
      {
        kind: "chain",
        family: F,
        table: T,
        name: "input",
        type: "filter",
        hook: "input",
        priority: o.priority ?? 0,
        policy: o.policy ?? "accept",
      },
      ...(helpers.length
        ? [
            {
              kind: "chain" as const,
              family: F,
              table: T,
              name: "ct_helper_prerouting",
              type: "filter" as const,
              hook: "prerouting" as const,
              priority: -199,
              policy: "accept" as const,
            },
          ]
        : []),
    ],
    rules,
  };
}

export function fixtureText(o: FixtureOptions): string {
  return serialize(replaceTables([fixtureDefinition(o)]));
}

/** The text and its compiled tables, as the agent gets them from the compiler (what a carry rebuilds). */
export function fixtureDesired(o: FixtureOptions): { text: string; tables: TableDefinition[] } {
  const def = fixtureDefinition(o);
  return { text: serialize(replaceTables([def])), tables: [def] };
}

/** A ruleset nft -c refuses in the kernel (a jump to a chain that does not exist). */
export function brokenText(): string {
  return fixtureText({ lan: "10.9.9.0/24", extra: ["jump no_such_chain"] });
}
