// quota2 -> named nft objects.
//   down-counting quota -> `quota NAME { until LIMIT bytes }`, rules `quota name "NAME"`:
//     matches while budget remains; a quota only ever used inverted (`! --quota`) is
//     declared `over` instead (matches once the budget is spent). nft decides
//     until/over per object, so one quota cannot be used both ways.
//   --grow -> `counter quota_NAME_grow_MODE` (MODE bytes|packets; always matches, counts
//     packets and bytes; starts at the quota's limit when one is given, as quota2's
//     initial value). The name says what the object is, so the agent reading the kernel
//     alone reports it as a growing quota of that mode (and resets it as one) instead of
//     as a plain counter. User counters may not take a name of that shape.
// Refused: packet-mode budgets (nft quotas count bytes only) and --no-change (an nft
// quota always consumes what passes it); iptables with xtables-addons quota2 does both.
import type { Path } from "../../diagnostics.ts";
import { isIdentifier } from "../../nft/index.ts";
import type { Policy } from "../../policy/index.ts";
import type { QuotaMatch } from "./deps.ts";
import { FAMILY, TABLE, type Ctx } from "./context.ts";

export type QuotaMode = "bytes" | "packets";

/** The nft counter a growing quota renders as. */
export const growCounterName = (quota: string, mode: QuotaMode) => `quota_${quota}_grow_${mode}`;

const GROW_COUNTER = /^quota_([A-Za-z][A-Za-z0-9_]*)_grow_(bytes|packets)$/;

/** The growing quota an nft counter name stands for, if it has that shape. */
export function parseGrowCounterName(name: string): { quota: string; mode: QuotaMode } | undefined {
  const m = GROW_COUNTER.exec(name);
  return m ? { quota: m[1]!, mode: m[2] as QuotaMode } : undefined;
}

/** Declare every quota of the policy (referenced or not: the agent reads them all). */
export function declareQuotas(policy: Policy, ctx: Ctx): void {
  const use = new Map<string, { normal: boolean; inverted: boolean }>();
  for (const chain of Object.values(policy.chains)) {
    for (const rule of chain.rules) {
      const q = rule.match?.quota;
      if (!q) continue;
      const u = use.get(q.name) ?? { normal: false, inverted: false };
      if (q.invert) u.inverted = true;
      else u.normal = true;
      use.set(q.name, u);
    }
  }
  for (const [name, def] of Object.entries(policy.quotas)) {
    const path = ["quotas", name];
    if (!isIdentifier(name)) {
      ctx.error(
        path,
        "nft_quota_name",
        `quota name "${name}" cannot name an nftables object: use a letter, then letters, digits or '_' (and not an nft keyword)`,
      );
      continue;
    }
    if (def.grow) {
      const start = def.limit ? (def.mode === "packets" ? { packets: def.limit } : { bytes: def.limit }) : {};
      ctx.declareCounter(
        {
          kind: "counter",
          family: FAMILY,
          table: TABLE,
          name: growCounterName(name, def.mode),
          ...start,
          comment: def.comment,
        },
        `quota "${name}"`,
        path,
      );
      continue;
    }
    if (def.mode === "packets") {
      // Refused by checkTargetSupport (object.quotaPackets).
      continue;
    }
    const u = use.get(name);
    if (u?.normal && u.inverted) {
      // Refused by checkTargetSupport (match.quotaMixedInvert).
      continue;
    }
    ctx.declareQuota(
      {
        kind: "quota",
        family: FAMILY,
        table: TABLE,
        name,
        mode: u?.inverted ? "over" : "until",
        bytes: def.limit ?? 0,
        comment: def.comment,
      },
      `quota "${name}"`,
      path,
    );
  }
}

export function quotaParts(q: QuotaMatch, ctx: Ctx, path: Path): string[] {
  const def = ctx.policy.quotas[q.name];
  if (!def) {
    ctx.error([...path, "name"], "nft_unknown_quota", `quota "${q.name}" is not declared under quotas`);
    return [];
  }
  if (q.noChange) {
    // Refused by checkTargetSupport (match.quotaNoChange).
    return [];
  }
  if (!isIdentifier(q.name)) return [];
  // quota2's `!` has no effect on a growing counter.
  return def.grow ? [`counter name "${growCounterName(q.name, def.mode)}"`] : [`quota name "${q.name}"`];
}
