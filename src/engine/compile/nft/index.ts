// The nftables compiler: policy document -> one atomic replace of Palisade's tables.
//
//   compileNft(policy, ctx) -> the table definitions and the Transaction the driver runs
//   renderNft(policy, ctx)  -> the same transaction as nft text
//
// Everything lives in `table inet palisade`; TEE clones need `table ip palisade_tee` /
// `table ip6 palisade_tee6` (see tee.ts). The replace is `add table` + `delete table` +
// the full definition in one transaction: it works whether or not the table exists,
// and it really empties named sets (`flush table` would keep their elements). The tee
// tables are always added and deleted, so one left by an earlier version goes away.
// No other table is ever named.
import { sortDiagnostics, type Diagnostic, error } from "../../diagnostics.ts";
import { parsePrefix } from "../../net/address.ts";
import {
  NftModelError,
  replaceTables,
  serialize,
  type Transaction,
  type Chain as NftChain,
  type Rule as NftRule,
  type TableDefinition,
} from "../../nft/index.ts";
import type { MarkForward, Path, Policy } from "./deps.ts";
import { normalizeAction } from "../../policy/index.ts";
import { checkTargetSupport } from "../support.ts";
import { Ctx, FAMILY, TABLE, type CompileContext, type Fam, type TeeRule } from "./context.ts";
import { compileSet } from "./sets.ts";
import { compileChain } from "./chains.ts";
import { compileRule, defaultComment } from "./rules.ts";
import { failsafeRules, FAILSAFE_COMMENT } from "./failsafe.ts";
import { compileForwarding, FWD_CHAINS, type GeneratedRule } from "./forwarding.ts";
import { planRecentTimeouts } from "./recent.ts";
import { countedBeforeRules, stampAfterRules, stampCountedLists } from "../hitcount.ts";
import { declareQuotas, parseGrowCounterName } from "./quota.ts";
import { declareAccounting } from "./accounting.ts";
import { TEE_TABLES, teeTables } from "./tee.ts";
import { expand, leadingPresetJumps, toUserPointer } from "./expand.ts";
import {
  ANTI_SPOOFING_BASE,
  ANTI_SPOOFING_CHAIN,
  antiSpoofingCache,
  placeAntiSpoofing,
  verifiedInterface,
} from "./anti-spoofing.ts";
import { forwardFastPath } from "./forward-fast-path.ts";

export type { CompileContext } from "./context.ts";
export { TABLE as NFT_TABLE } from "./context.ts";
// Names the agent needs to read state back: accounting sets/counters; the NFLOG group log and LOGMARK events go to by default.
export {
  accountingNames,
  parseAccountingName,
  parseAggregateComment,
  ACCOUNT_MAX_SLOTS,
  type AccountingObject,
} from "./accounting.ts";
export { LOG_DEFAULT_GROUP } from "./action.ts";
export { growCounterName, packetBucketSet, packetSpentSet, parseGrowCounterName, type QuotaMode } from "./quota.ts";
export { TEE_TABLES } from "./tee.ts";

export type NftCompileResult =
  /** `text` is `serialize(transaction)`, computed once. */
  | { ok: true; tables: TableDefinition[]; transaction: Transaction; text: string; warnings: Diagnostic[] }
  | { ok: false; errors: Diagnostic[] };

function checkFailsafeContext(ctx: Ctx): void {
  const fs = ctx.options.failsafe;
  for (const a of fs?.apiAddresses ?? []) {
    if (!parsePrefix(a) || a.includes("/"))
      ctx.error([], "nft_failsafe_address", `failsafe API address ${JSON.stringify(a)} is not an IP address`);
  }
  if (fs?.apiPort !== undefined && !(Number.isInteger(fs.apiPort) && fs.apiPort >= 1 && fs.apiPort <= 65535)) {
    ctx.error([], "nft_failsafe_port", `failsafe API port ${String(fs.apiPort)} is not a TCP port`);
  }
}

function build(policy: Policy, ctx: Ctx, original: Policy): TableDefinition[] {
  checkFailsafeContext(ctx);
  const timeouts = planRecentTimeouts(policy);
  ctx.stampAfter = stampAfterRules(policy);
  ctx.stampCounted = stampCountedLists(policy);
  ctx.countedBefore = countedBeforeRules(policy);
  for (const [name, def] of Object.entries(policy.sets))
    ctx.declareSet(compileSet(name, def, ctx), `set "${name}"`, ["sets", name]);
  for (const [name, def] of Object.entries(policy.counters)) {
    if (parseGrowCounterName(name)) {
      ctx.error(
        ["counters", name],
        "nft_name_reserved",
        `counter name "${name}" has the shape of a growing quota's counter (quota_<name>_grow_bytes|packets), which the agent reports as that quota; rename the counter`,
      );
      continue;
    }
    ctx.declareCounter(
      { kind: "counter", family: FAMILY, table: TABLE, name, ...(def.comment ? { comment: def.comment } : {}) },
      `counter "${name}"`,
      ["counters", name],
    );
  }
  declareQuotas(policy, ctx);
  for (const name of Object.keys(policy.accounting)) declareAccounting(name, ctx, ["accounting", name]);

  const chains: NftChain[] = [];
  const rules: NftRule[] = [];
  const rule = (chain: string, body: string, comment: string): NftRule => ({
    kind: "rule",
    family: FAMILY,
    table: TABLE,
    chain,
    body,
    comment,
  });
  const generated = new Set<string>(Object.values(FWD_CHAINS));
  for (const name of Object.keys(policy.chains)) {
    if (generated.has(name))
      ctx.error(
        ["chains", name],
        "nft_name_clash",
        `chain name "${name}" is reserved for port forwarding; rename the chain`,
      );
  }

  // mfw mark rules go through the ordinary rule compiler (any match a rule can have).
  const markRules = (mf: MarkForward, path: Path, comment: string): GeneratedRule[] =>
    compileRule(
      { match: mf.match, action: { type: "mark", value: mf.mark } },
      FWD_CHAINS.mark,
      { table: "mangle", hook: "prerouting" },
      path,
      ctx,
      timeouts,
      comment,
    ).rules.map((r) => ({ chain: FWD_CHAINS.mark, ...r }));
  const fwd = compileForwarding(policy.forwarding, ctx, markRules);

  const tee = new Map<string, { chain: Policy["chains"][string]; rules: TeeRule[] }>();
  for (const [name, chain] of Object.entries(policy.chains)) {
    chains.push(placeAntiSpoofing(compileChain(name, chain, ctx), original));
    for (const body of failsafeRules(policy, chain.hook, chain.table, ctx.options.failsafe))
      rules.push(rule(name, body, FAILSAFE_COMMENT));
    // Forwarded connections are accepted before the policy's own forward rules, but after
    // the jumps the preset expansion put first (into chains the document itself does not
    // have), so protections still see forwarded traffic.
    const accepts = chain.table === "filter" && chain.hook === "forward" ? fwd.forwardAccepts : [];
    const presetJumps = leadingPresetJumps(chain.rules, original);
    if (presetJumps === 0) for (const r of accepts) rules.push(rule(name, r.body, r.comment));
    chain.rules.forEach((r, i) => {
      const path = ["chains", name, "rules", i];
      if (normalizeAction(r.action).type === "ctHelper") {
        ctHelperRule(name, chain, i, path, ctx, timeouts);
        return;
      }
      const out = compileRule(r, name, chain, path, ctx, timeouts, r.comment ?? defaultComment(name, i));
      for (const b of out.rules) rules.push(rule(name, b.body, b.comment));
      if (i + 1 === presetJumps) for (const a of accepts) rules.push(rule(name, a.body, a.comment));
      if (out.tee.length) {
        const entry = tee.get(name) ?? { chain, rules: [] };
        entry.rules.push(...out.tee);
        tee.set(name, entry);
      }
    });
  }
  const verified = verifiedInterface(original);
  if (verified && policy.chains[ANTI_SPOOFING_CHAIN]) {
    // The antiSpoofing preset's checks run once per connection direction (anti-spoofing.ts).
    const cache = antiSpoofingCache(verified);
    const last = rules.length - [...rules].reverse().findIndex((r) => r.chain === ANTI_SPOOFING_CHAIN);
    rules.splice(last, 0, ...cache.tail.map((r) => rule(ANTI_SPOOFING_CHAIN, r.body, r.comment)));
    // The skips go in the base chain, before the jump: most packets then never enter the preset chain.
    const jump = rules.findIndex((r) => r.chain === ANTI_SPOOFING_BASE && r.body === `jump ${ANTI_SPOOFING_CHAIN}`);
    rules.splice(jump, 0, ...cache.head.map((r) => rule(ANTI_SPOOFING_BASE, r.body, r.comment)));
  }
  chains.push(...fwd.chains);
  for (const r of fwd.rules) rules.push(rule(r.chain, r.body, r.comment));
  for (const g of ctx.chains.values()) {
    chains.push(g.chain);
    for (const r of g.rules) rules.push(rule(g.chain.name, r.body, r.comment));
  }

  const main: TableDefinition = {
    table: {
      kind: "table",
      family: FAMILY,
      name: TABLE,
      ...(policy.description ? { comment: policy.description } : {}),
      ...(ctx.ctHelpers.size ? { ctHelpers: [...ctx.ctHelpers.values()] } : {}),
    },
    counters: [...ctx.counters.values()],
    quotas: [...ctx.quotas.values()],
    sets: [...ctx.sets.values()],
    chains,
    // An ESTABLISHED packet the forward presets would only pass on is accepted before their jump.
    rules: forwardFastPath(rules, chains),
  };
  const teeDefs = teeTables(tee, ctx);
  return [main, ...(["ipv4", "ipv6"] as Fam[]).flatMap((f) => (teeDefs.has(f) ? [teeDefs.get(f)!] : []))];
}

/** Priority of the chains that attach conntrack helpers: right after conntrack (-200), before mangle (-150). */
export const CT_HELPER_PRIORITY = -199;

/** Actions after which a raw chain's later rules still see the packet (or it is gone, or untracked). */
const HELPER_SAFE_BEFORE: ReadonlySet<string> = new Set([
  "drop",
  "reject",
  "notrack",
  "counter",
  "log",
  "mark",
  "ctHelper",
]);

/**
 * CT --helper NAME. iptables' CT target hangs a template on the packet in raw, before
 * conntrack; nft's `ct helper set` needs the connection conntrack creates (priority -200):
 * measured, at priority raw (-300) it attaches nothing and no expectation is made, at -199
 * the FTP helper expects the data connection. So the rule goes, with its match, to a chain
 * of its own on the same hook at priority -199. That keeps iptables' meaning only when no
 * earlier rule of the raw chain can end the chain for a packet that is kept (accept, return,
 * a jump); those, and user chains, are refused with a reason.
 */
function ctHelperRule(
  name: string,
  chain: Policy["chains"][string],
  i: number,
  path: Path,
  ctx: Ctx,
  timeouts: ReturnType<typeof planRecentTimeouts>,
): void {
  if (chain.hook !== "prerouting" && chain.hook !== "output") {
    ctx.error(
      path,
      "nft_ct_helper_chain",
      "nftables attaches a helper after conntrack, in a chain of its own: put the ctHelper rule in the raw prerouting or output base chain itself (not a user chain), or render with target iptables",
    );
    return;
  }
  // An earlier rule whose match is only a family (the importer's "IPv6 passes" accept) keeps
  // that family's packets from the helper: the moved rule is narrowed to the other family.
  const passed = new Set<string>();
  for (const [j, e] of chain.rules.slice(0, i).entries()) {
    const t = normalizeAction(e.action).type;
    if (HELPER_SAFE_BEFORE.has(t)) continue;
    const keys = Object.keys(e.match ?? {});
    if (keys.length === 1 && keys[0] === "family" && typeof e.match?.family === "string") {
      passed.add(e.match.family);
      continue;
    }
    ctx.error(
      path,
      "nft_ct_helper_order",
      `nftables attaches a helper after conntrack, in a chain of its own, so rule ${j} (${t}) before it could not keep a packet from it: move the ctHelper rule above that rule, or render with target iptables`,
    );
    return;
  }
  const own = chain.rules[i]!;
  const families = (["ipv4", "ipv6"] as const).filter((f) => !passed.has(f) && (own.match?.family ?? f) === f);
  // Every family the rule matches was passed on before it: the rule never runs.
  if (families.length === 0) return;
  const r = families.length === 1 && passed.size > 0 ? { ...own, match: { ...own.match, family: families[0]! } } : own;
  const helperChain = `ct_helper_${chain.hook}`;
  const existing = ctx.chains.get(helperChain);
  const body = existing?.rules ?? [];
  const out = compileRule(r, helperChain, chain, path, ctx, timeouts, r.comment ?? defaultComment(name, i));
  body.push(...out.rules);
  if (!existing)
    ctx.declareChain(
      {
        kind: "chain",
        family: FAMILY,
        table: TABLE,
        name: helperChain,
        type: "filter",
        hook: chain.hook,
        priority: CT_HELPER_PRIORITY,
        policy: "accept",
      },
      body,
      `the ctHelper rules of ${chain.hook}`,
      path,
    );
}

/** Compile a validated policy to the transaction that replaces Palisade's tables. */
export function compileNft(policy: Policy, options: CompileContext = {}): NftCompileResult {
  let expanded: Policy;
  const diagnostics: Diagnostic[] = [];
  try {
    expanded = expand(policy);
  } catch (e) {
    return {
      ok: false,
      errors: [
        error(
          [],
          "nft_expand_failed",
          `the protection presets could not be expanded: ${e instanceof Error ? e.message : String(e)}`,
        ),
      ],
    };
  }
  // Support is checked on the document as written, so errors point at the user's rules.
  diagnostics.push(...checkTargetSupport(policy, "nftables"));
  const ctx = new Ctx(expanded, options);
  let tables: TableDefinition[] = [];
  let tx: Transaction | undefined;
  let text = "";
  try {
    tables = build(expanded, ctx, policy);
    if (!ctx.failed && !diagnostics.some((d) => d.severity === "error")) {
      tx = replaceTables(tables);
      // Tee tables of an earlier version disappear even when this one has none.
      const present = new Set(tables.map((t) => `${t.table.family} ${t.table.name}`));
      for (const t of Object.values(TEE_TABLES)) {
        if (present.has(`${t.family} ${t.name}`)) continue;
        tx.add({ kind: "table", family: t.family, name: t.name });
        tx.delete({ kind: "table", family: t.family, name: t.name });
      }
      text = serialize(tx); // also surfaces a model error (bad name, unsafe text) as a diagnostic
    }
  } catch (e) {
    if (!(e instanceof NftModelError)) throw e;
    ctx.error([], `nft_${e.code}`, e.message);
  }
  // The compiler worked on the expanded policy; point its findings back into the document as written.
  diagnostics.push(
    ...ctx.diagnostics.map((d) => (expanded === policy ? d : { ...d, path: toUserPointer(d.path, policy, expanded) })),
  );
  const errors = sortDiagnostics(diagnostics.filter((d) => d.severity === "error"));
  if (errors.length > 0 || !tx) return { ok: false, errors };
  return {
    ok: true,
    tables,
    transaction: tx,
    text,
    warnings: sortDiagnostics(diagnostics.filter((d) => d.severity === "warning")),
  };
}

/** The policy as nft text: one `nft -f` transaction replacing Palisade's tables. */
export function renderNft(
  policy: Policy,
  options: CompileContext = {},
): { ok: true; text: string } | { ok: false; errors: Diagnostic[] } {
  const r = compileNft(policy, options);
  return r.ok ? { ok: true, text: r.text } : { ok: false, errors: r.errors };
}
