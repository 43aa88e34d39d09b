// xtables-addons matches, spelled as the xtables-addons manual shows them. Which target
// can render them at all is decided in compile/support.ts; here only the syntax.
import { unwrap, type Match } from "../../policy/index.ts";
import type { RuleEnv } from "./context.ts";
import { SLOT, piece, type Piece } from "./pieces.ts";
import { bare } from "./quote.ts";

type Xt = NonNullable<Match["xt"]>;
const neg = (n: boolean | undefined) => (n ? "! " : "");

export function xtMatchPieces(xt: Xt, env: RuleEnv): Piece[] {
  const out: Piece[] = [];
  const at = (...rest: string[]) => [...env.path, "xt", ...rest];
  let slot: number = SLOT.xt;
  const add = (text: string, at?: number) => {
    out.push(piece(at ?? slot, text));
    slot += 0.01;
  };
  if (xt.condition !== undefined) {
    const { value, negated } = unwrap(xt.condition);
    add(`-m condition ${neg(negated)}--condition ${bare(value, env.ctx, at("condition"), "condition name")}`);
  }
  if (xt.geoip) {
    const g = xt.geoip;
    const parts = ["-m geoip"];
    if (g.source) parts.push(`${neg(g.invert)}--src-cc ${g.source.join(",")}`);
    if (g.destination) parts.push(`${neg(g.invert)}--dst-cc ${g.destination.join(",")}`);
    if (parts.length === 1)
      env.ctx.error(at("geoip"), "iptables_geoip_empty", "geoip needs source or destination countries");
    add(parts.join(" "));
  }
  if (xt.iface) {
    const f = xt.iface;
    const selectors = [f.interface !== undefined, f.devIn === true, f.devOut === true].filter(Boolean).length;
    if (selectors !== 1)
      env.ctx.error(at("iface"), "iptables_iface_selector", "iface needs exactly one of interface, devIn or devOut");
    if (f.interface?.endsWith("*"))
      env.ctx.error(
        at("iface", "interface"),
        "iptables_iface_wildcard",
        "the iface match takes one exact interface name, not a wildcard",
      );
    const sel =
      f.interface !== undefined
        ? `--iface ${bare(f.interface, env.ctx, at("iface", "interface"), "interface")}`
        : f.devIn
          ? "--dev-in"
          : "--dev-out";
    add(["-m iface", sel, ...f.flags.map((x) => `${neg(x.not)}--${x.flag}`)].join(" "));
  }
  if (xt.ipp2p) add(["-m ipp2p", ...xt.ipp2p.map((p) => `--${p}`)].join(" "));
  if (xt.ipv4options) {
    const o = xt.ipv4options;
    const flags = o.flags.map((f) => `${f.not ? "!" : ""}${f.option}`).join(",");
    add(`-m ipv4options --flags ${flags}${o.any ? " --any" : ""}`);
  }
  if (xt.lscan) add(["-m lscan", ...xt.lscan.map((s) => `--${s}`)].join(" "));
  if (xt.psd) {
    const p = xt.psd;
    const parts = ["-m psd"];
    if (p.weightThreshold !== undefined) parts.push(`--psd-weight-threshold ${p.weightThreshold}`);
    if (p.delayThreshold !== undefined) parts.push(`--psd-delay-threshold ${p.delayThreshold}`);
    if (p.loPortsWeight !== undefined) parts.push(`--psd-lo-ports-weight ${p.loPortsWeight}`);
    if (p.hiPortsWeight !== undefined) parts.push(`--psd-hi-ports-weight ${p.hiPortsWeight}`);
    add(parts.join(" "), SLOT.psd);
  }
  if (xt.fuzzy) add(`-m fuzzy --lower-limit ${xt.fuzzy.lowerLimit} --upper-limit ${xt.fuzzy.upperLimit}`);
  if (xt.gradm) add(`-m gradm --${xt.gradm}`);
  if (xt.dhcpmac !== undefined) {
    const { value, negated } = unwrap(xt.dhcpmac);
    add(`-m dhcpmac ${neg(negated)}--mac ${bare(value.toLowerCase(), env.ctx, at("dhcpmac"), "MAC address")}`);
  }
  if (xt.length2) {
    const { value, negated } = unwrap(xt.length2.length);
    add(`-m length2 --${xt.length2.layer} ${neg(negated)}--length ${String(value).replace("-", ":")}`);
  }
  return out;
}
