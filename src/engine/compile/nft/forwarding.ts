// Kernel port forwarding (seed: kernel-port-forwarding) -> NAT chains of the palisade table.
//
//   PORTFW  -> chain fwd_dnat (nat prerouting, priority dstnat - 1: before the policy's own
//              nat chains, so a forward wins): one backend `dnat ip to A:p`; several
//              `dnat ip to numgen inc mod SUM map { 0-14 : A . p, 15-19 : B . p }`.
//              `numgen inc` walks the ranges in order, which is PORTFW's own scheduler
//              (each entry serves `pref` connections, then the next one): weight 1 each is
//              round robin, 15:5 sends exactly 3 of every 4 connections to A.
//   AUTOFW  -> `tcp dport LO-HI dnat ip to H` (ports kept).
//   mfw     -> chain fwd_mark (filter prerouting, priority mangle): `<match> meta mark set M`;
//              then in fwd_dnat `meta mark M dnat ip to <backend>`: preferences all 0 =
//              failover, the backend at index `active` (the agent moves it, like mfw -S);
//              otherwise the backends with preference > 0 share by weight.
// Forwarded connections are accepted at the top of the policy's filter forward chains
// (`ct status dnat` and the backend address/port), and `masquerade: true` adds
// `... ct status dnat masquerade` in chain fwd_snat (nat postrouting, srcnat).
import type { Path } from "../../diagnostics.ts";
import { markForwardBackends, type WeightedBackend } from "../mark-forward.ts";
import { parsePrefix } from "../../net/address.ts";
import { ifname, type Chain as NftChain } from "../../nft/index.ts";
import type { Forwarding } from "../../policy/index.ts";
import type { MarkForward, PortForward, RangeForward } from "./deps.ts";
import { FAMILY, TABLE, type Ctx, type Fam } from "./context.ts";
import { valueOrSet } from "./sets.ts";

export const FWD_CHAINS = { mark: "fwd_mark", dnat: "fwd_dnat", snat: "fwd_snat" } as const;

export interface GeneratedRule {
  chain: string;
  body: string;
  comment: string;
}

export interface ForwardingOutput {
  chains: NftChain[];
  rules: GeneratedRule[];
  /** Accept rules for the top of every filter forward base chain of the policy. */
  forwardAccepts: { body: string; comment: string }[];
}

const famWord = (f: Fam) => (f === "ipv4" ? "ip" : "ip6");
const hostPort = (a: string, p: number | undefined, f: Fam) =>
  p === undefined ? a : f === "ipv6" ? `[${a}]:${p}` : `${a}:${p}`;
const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

/** One family for all addresses, or an error. */
function familyOf(addresses: string[], ctx: Ctx, path: Path): Fam | undefined {
  const fams = new Set(addresses.map((a) => parsePrefix(a)?.family));
  if (fams.size !== 1 || fams.has(undefined)) {
    ctx.error(path, "nft_forward_family", "a forward's addresses must all be IPv4 or all IPv6");
    return undefined;
  }
  return [...fams][0];
}

/** `dnat ip to ...` for one or more weighted targets (see the file header). */
function dnatTo(targets: WeightedBackend[], fam: Fam, ctx: Ctx, path: Path): string | undefined {
  if (targets.length === 1) return `dnat ${famWord(fam)} to ${hostPort(targets[0]!.address, targets[0]!.port, fam)}`;
  const withPort = targets.filter((t) => t.port !== undefined).length;
  if (withPort !== 0 && withPort !== targets.length) {
    ctx.error(
      path,
      "nft_forward_ports",
      "give every backend a port, or none (a balanced forward maps to address . port pairs)",
    );
    return undefined;
  }
  const sum = targets.reduce((s, t) => s + t.weight, 0);
  let next = 0;
  const entries = targets.map((t) => {
    const key = t.weight === 1 ? String(next) : `${next}-${next + t.weight - 1}`;
    next += t.weight;
    return `${key} : ${t.port === undefined ? t.address : `${t.address} . ${t.port}`}`;
  });
  return `dnat ${famWord(fam)} to numgen inc mod ${sum} map { ${entries.join(", ")} }`;
}

function l4Key(proto: string | undefined): string {
  return proto ? `${proto} dport` : "th dport";
}

function portForward(pf: PortForward, i: number, out: ForwardingOutput, ctx: Ctx): void {
  const path = ["forwarding", "portForwards", i];
  const fam = familyOf([...(pf.address ? [pf.address] : []), ...pf.backends.map((b) => b.address)], ctx, path);
  if (!fam) return;
  const comment = pf.comment ?? `portfw ${pf.protocol} ${pf.address ?? "*"}:${pf.port}`;
  const targets = pf.backends.map((b) => ({ address: b.address, port: b.port ?? pf.port, weight: b.weight }));
  const dnat = dnatTo(targets, fam, ctx, [...path, "backends"]);
  if (!dnat) return;
  const match = [
    ...(pf.iif ? [`iifname ${ifname(pf.iif.replace(/\*$/, ""), { wildcard: pf.iif.endsWith("*") })}`] : []),
    ...(pf.address ? [`${famWord(fam)} daddr ${pf.address}`] : []),
    `${pf.protocol} dport ${pf.port}`,
  ];
  out.rules.push({ chain: FWD_CHAINS.dnat, body: [...match, dnat].join(" "), comment });
  const pairs = [...new Set(targets.map((t) => `${t.address} . ${t.port}`))];
  // nft refuses a concatenation against a single value: write one backend as two matches.
  const backendMatch =
    pairs.length === 1
      ? `${famWord(fam)} daddr ${targets[0]!.address} ${pf.protocol} dport ${targets[0]!.port} ct status dnat`
      : `${famWord(fam)} daddr . ${pf.protocol} dport ${valueOrSet(pairs)} ct status dnat`;
  out.forwardAccepts.push({ body: `${backendMatch} accept`, comment });
  if (pf.masquerade) out.rules.push({ chain: FWD_CHAINS.snat, body: `${backendMatch} masquerade`, comment });
}

function rangeForward(rf: RangeForward, i: number, out: ForwardingOutput, ctx: Ctx): void {
  const path = ["forwarding", "rangeForwards", i];
  const fam = familyOf([rf.to], ctx, path);
  if (!fam) return;
  const [lo, hi] = rf.ports.split("-").map(Number) as [number, number];
  if (lo > hi || hi > 65535) {
    ctx.error([...path, "ports"], "nft_port_range", `port range ${rf.ports} must be low-high with high <= 65535`);
    return;
  }
  const comment = rf.comment ?? `autofw ${rf.protocol} ${rf.ports} -> ${rf.to}`;
  const iif = rf.iif ? [`iifname ${ifname(rf.iif.replace(/\*$/, ""), { wildcard: rf.iif.endsWith("*") })}`] : [];
  out.rules.push({
    chain: FWD_CHAINS.dnat,
    body: [...iif, `${l4Key(rf.protocol)} ${rf.ports}`, `dnat ${famWord(fam)} to ${rf.to}`].join(" "),
    comment,
  });
  const backendMatch = `${famWord(fam)} daddr ${rf.to} ${rf.protocol} dport ${rf.ports} ct status dnat`;
  out.forwardAccepts.push({ body: `${backendMatch} accept`, comment });
  if (rf.masquerade) out.rules.push({ chain: FWD_CHAINS.snat, body: `${backendMatch} masquerade`, comment });
}

function markForward(
  mf: MarkForward,
  i: number,
  out: ForwardingOutput,
  ctx: Ctx,
  markRules: (mf: MarkForward, path: Path, comment: string) => GeneratedRule[],
): void {
  const path = ["forwarding", "markForwards", i];
  const fam = familyOf(
    mf.backends.map((b) => b.address),
    ctx,
    [...path, "backends"],
  );
  if (!fam) return;
  const comment = mf.comment ?? `mfw mark ${mf.mark}`;
  const targets = markForwardBackends(mf);
  if (!targets) {
    ctx.error(
      [...path, "active"],
      "nft_mfw_active",
      `active is ${mf.active} but there are only ${mf.backends.length} backends`,
    );
    return;
  }
  const dnat = dnatTo(targets, fam, ctx, [...path, "backends"]);
  if (!dnat) return;
  out.rules.push(...markRules(mf, path, comment));
  const l4 = targets.some((t) => t.port !== undefined) ? ["meta l4proto { tcp, udp }"] : [];
  out.rules.push({ chain: FWD_CHAINS.dnat, body: [`meta mark ${hex(mf.mark)}`, ...l4, dnat].join(" "), comment });
  const addrs = valueOrSet([...new Set(targets.map((t) => t.address))]);
  out.forwardAccepts.push({ body: `${famWord(fam)} daddr ${addrs} ct status dnat accept`, comment });
  if (mf.masquerade)
    out.rules.push({
      chain: FWD_CHAINS.snat,
      body: `${famWord(fam)} daddr ${addrs} ct status dnat masquerade`,
      comment,
    });
}

export function compileForwarding(
  fw: Forwarding,
  ctx: Ctx,
  markRules: (mf: MarkForward, path: Path, comment: string) => GeneratedRule[],
): ForwardingOutput {
  const out: ForwardingOutput = { chains: [], rules: [], forwardAccepts: [] };
  fw.portForwards.forEach((pf, i) => portForward(pf, i, out, ctx));
  fw.rangeForwards.forEach((rf, i) => rangeForward(rf, i, out, ctx));
  fw.markForwards.forEach((mf, i) => markForward(mf, i, out, ctx, markRules));
  const used = new Set(out.rules.map((r) => r.chain));
  const base = { kind: "chain" as const, family: FAMILY, table: TABLE };
  if (used.has(FWD_CHAINS.mark))
    out.chains.push({
      ...base,
      name: FWD_CHAINS.mark,
      type: "filter",
      hook: "prerouting",
      priority: "mangle",
      comment: "mfw: mark forwarded traffic",
    });
  if (used.has(FWD_CHAINS.dnat))
    out.chains.push({
      ...base,
      name: FWD_CHAINS.dnat,
      type: "nat",
      hook: "prerouting",
      priority: { base: "dstnat", offset: -1 },
      comment: "port forwards (PORTFW, AUTOFW, mfw)",
    });
  if (used.has(FWD_CHAINS.snat))
    out.chains.push({
      ...base,
      name: FWD_CHAINS.snat,
      type: "nat",
      hook: "postrouting",
      priority: "srcnat",
      comment: "masquerade forwarded connections",
    });
  return out;
}
