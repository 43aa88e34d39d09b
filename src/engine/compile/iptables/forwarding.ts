// Kernel port forwarding (seed: kernel-port-forwarding) -> rules in Palisade's entry chains.
//
//   PORTFW  -> nat PREROUTING: DNAT per backend. Several backends share new connections by
//              weight with `-m statistic --mode random --probability p`: rule k takes
//              w_k / (w_k + ... + w_n) of what the earlier rules left, so each backend gets
//              w_k / W of all connections; the last backend takes the rest unconditionally.
//              (nat rules see only a connection's first packet, so the split is per connection.)
//   AUTOFW  -> nat PREROUTING: `--dport LO:HI -j DNAT --to-destination H` (ports kept).
//   mfw     -> mangle PREROUTING: `<match> -j MARK`; nat PREROUTING: `-m mark --mark M -j DNAT`
//              to the backend at index `active` when all preferences are 0 (failover: the
//              agent moves `active`, like mfw -S), else shared by preference as for PORTFW.
// Forwarded connections are accepted at the top of filter FORWARD's entry chain (when the
// policy filters forward at all) by `--ctstate DNAT` and backend address/port, and
// `masquerade: true` adds the same match with MASQUERADE in nat POSTROUTING.
import type { Path } from "../../diagnostics.ts";
import { markForwardBackends, type WeightedBackend } from "../mark-forward.ts";
import type { Policy } from "../../policy/index.ts";

type PortForward = Policy["forwarding"]["portForwards"][number];
type RangeForward = Policy["forwarding"]["rangeForwards"][number];
type MarkForward = Policy["forwarding"]["markForwards"][number];
import { familyOf, hostPort } from "./address.ts";
import type { Fam, IptCtx, Table } from "./context.ts";
import { matchAlternatives } from "./match.ts";
import { SLOT, joinPieces, piece } from "./pieces.ts";
import { bare, quoteText } from "./quote.ts";

export interface EntryRule {
  table: Table;
  hook: string;
  body: string;
  /** false: only added when the entry chain exists for other reasons (forward accepts). */
  creates: boolean;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** Probabilities that give each backend its weight's share of new connections. */
export function shareProbabilities(weights: number[]): (number | undefined)[] {
  let remaining = weights.reduce((s, w) => s + w, 0);
  return weights.map((w, k) => {
    if (k === weights.length - 1) return undefined;
    const p = w / remaining;
    remaining -= w;
    return p;
  });
}

function forwardFamily(addresses: string[], ctx: IptCtx, path: Path): Fam | undefined {
  const fams = new Set(addresses.map((a) => familyOf(a)));
  if (fams.size !== 1 || fams.has(undefined)) {
    ctx.error(path, "iptables_forward_family", "a forward's addresses must all be IPv4 or all IPv6");
    return undefined;
  }
  return [...fams][0];
}

const host = (a: string, fam: Fam) => `${a}/${fam === "ipv4" ? 32 : 128}`;

function iifPart(iif: string | undefined, ctx: IptCtx, path: Path): string {
  return iif ? `-i ${bare(iif.endsWith("*") ? `${iif.slice(0, -1)}+` : iif, ctx, [...path, "iif"], "interface")} ` : "";
}

/** DNAT rules for weighted backends, each prefixed by `head` (matches before the statistic). */
function dnatRules(head: string, backends: WeightedBackend[], comment: string): string[] {
  const probs = shareProbabilities(backends.map((b) => b.weight));
  return backends.map((b, k) => {
    const p = probs[k];
    const stat = p === undefined ? "" : `-m statistic --mode random --probability ${p.toFixed(11)} `;
    return `${head}${stat}-m comment --comment ${comment} -j DNAT --to-destination ${hostPort(b.address, b.port)}`;
  });
}

function portForward(pf: PortForward, i: number, fam: Fam, ctx: IptCtx, out: EntryRule[]): void {
  const path = ["forwarding", "portForwards", i];
  const f = forwardFamily([...(pf.address ? [pf.address] : []), ...pf.backends.map((b) => b.address)], ctx, path);
  if (f !== fam) return;
  const comment = quoteText(pf.comment ?? `portfw ${pf.protocol} ${pf.address ?? "*"}:${pf.port}`, ctx, [
    ...path,
    "comment",
  ]);
  const backends = pf.backends.map((b) => ({ address: b.address, port: b.port ?? pf.port, weight: b.weight }));
  const dst = pf.address ? `-d ${host(pf.address, fam)} ` : "";
  const head = `${dst}${iifPart(pf.iif, ctx, path)}-p ${pf.protocol} -m ${pf.protocol} --dport ${pf.port} `;
  for (const body of dnatRules(head, backends, comment))
    out.push({ table: "nat", hook: "prerouting", body, creates: true });
  for (const key of new Set(backends.map((b) => `${b.address}|${b.port}`))) {
    const [a, p] = key.split("|") as [string, string];
    const match = `-d ${host(a, fam)} -p ${pf.protocol} -m ${pf.protocol} --dport ${p} -m conntrack --ctstate DNAT -m comment --comment ${comment}`;
    out.push({ table: "filter", hook: "forward", body: `${match} -j ACCEPT`, creates: false });
    if (pf.masquerade) out.push({ table: "nat", hook: "postrouting", body: `${match} -j MASQUERADE`, creates: true });
  }
}

function rangeForward(rf: RangeForward, i: number, fam: Fam, ctx: IptCtx, out: EntryRule[]): void {
  const path = ["forwarding", "rangeForwards", i];
  if (forwardFamily([rf.to], ctx, path) !== fam) return;
  const [lo, hi] = rf.ports.split("-").map(Number) as [number, number];
  if (lo > hi || hi > 65535) {
    ctx.error([...path, "ports"], "iptables_port_range", `port range ${rf.ports} must be low-high with high <= 65535`);
    return;
  }
  const comment = quoteText(rf.comment ?? `autofw ${rf.protocol} ${rf.ports} -> ${rf.to}`, ctx, [...path, "comment"]);
  const ports = `-p ${rf.protocol} -m ${rf.protocol} --dport ${lo}:${hi}`;
  out.push({
    table: "nat",
    hook: "prerouting",
    creates: true,
    body: `${iifPart(rf.iif, ctx, path)}${ports} -m comment --comment ${comment} -j DNAT --to-destination ${hostPort(rf.to, undefined)}`,
  });
  const match = `-d ${host(rf.to, fam)} ${ports} -m conntrack --ctstate DNAT -m comment --comment ${comment}`;
  out.push({ table: "filter", hook: "forward", body: `${match} -j ACCEPT`, creates: false });
  if (rf.masquerade) out.push({ table: "nat", hook: "postrouting", body: `${match} -j MASQUERADE`, creates: true });
}

function markForward(mf: MarkForward, i: number, fam: Fam, ctx: IptCtx, out: EntryRule[]): void {
  const path = ["forwarding", "markForwards", i];
  if (
    forwardFamily(
      mf.backends.map((b) => b.address),
      ctx,
      [...path, "backends"],
    ) !== fam
  )
    return;
  const commentText = quoteText(mf.comment ?? `mfw mark ${mf.mark}`, ctx, [...path, "comment"]);
  const backends = markForwardBackends(mf);
  if (!backends) {
    ctx.error(
      [...path, "active"],
      "iptables_mfw_active",
      `active is ${mf.active} but there are only ${mf.backends.length} backends`,
    );
    return;
  }
  // Mark the traffic the forward selects (ipchains -m), in mangle so nat PREROUTING sees it.
  const env = { ctx, fam, table: "mangle" as const, hook: "prerouting", seed: `mfw${i}`, path: [...path, "match"] };
  const alts = matchAlternatives(mf.match, env) ?? [];
  for (const alt of alts) {
    const body = joinPieces([
      ...alt,
      piece(SLOT.comment, `-m comment --comment ${commentText}`),
      piece(SLOT.target, `-j MARK --set-xmark ${hex(mf.mark)}/0xffffffff`),
    ]);
    out.push({ table: "mangle", hook: "prerouting", body, creates: true });
  }
  // A port in the DNAT needs a transport protocol: one rule set per protocol.
  const protos = backends.some((b) => b.port !== undefined) ? ["-p tcp ", "-p udp "] : [""];
  for (const p of protos) {
    for (const body of dnatRules(`${p}-m mark --mark ${hex(mf.mark)} `, backends, commentText))
      out.push({ table: "nat", hook: "prerouting", body, creates: true });
  }
  for (const a of new Set(backends.map((b) => b.address))) {
    const match = `-d ${host(a, fam)} -m conntrack --ctstate DNAT -m comment --comment ${commentText}`;
    out.push({ table: "filter", hook: "forward", body: `${match} -j ACCEPT`, creates: false });
    if (mf.masquerade) out.push({ table: "nat", hook: "postrouting", body: `${match} -j MASQUERADE`, creates: true });
  }
}

export function forwardingRules(policy: Policy, fam: Fam, ctx: IptCtx): EntryRule[] {
  const out: EntryRule[] = [];
  const fw = policy.forwarding;
  fw.portForwards.forEach((pf, i) => portForward(pf, i, fam, ctx, out));
  fw.rangeForwards.forEach((rf, i) => rangeForward(rf, i, fam, ctx, out));
  fw.markForwards.forEach((mf, i) => markForward(mf, i, fam, ctx, out));
  return out;
}
