// The TOS action (iptables `-j TOS --set-tos value/mask`) for one family:
//   new = (old & ~mask) ^ value
// on the IPv4 TOS byte / IPv6 traffic class, which nft splits into `dscp` (6 bits) and
// `ecn` (2 bits). nft 1.0.6 sets a field only to a constant (`ip dscp set ip dscp & ...` is
// refused: "Right hand side of binary operation must be constant"), so bits the mask keeps
// are kept by case: per field that changes and keeps bits, a chain tos_VV_MM_v4_dscp with
// one rule per pattern of its kept bits, `ip dscp & KEPT == P ip dscp set (P ^ V) return`.
// With no kept bits (the default mask 0xff) the statements are inline. Symbolic names
// (Minimize-Delay, mask 0x3f) keep the two precedence bits: 4 cases.
import type { Path } from "../../diagnostics.ts";
import { FAMILY, TABLE, type Ctx, type Fam } from "./context.ts";

const FIELDS = [
  { name: "dscp", shift: 2, max: 0x3f },
  { name: "ecn", shift: 0, max: 0x3 },
] as const;

const hex2 = (n: number) => n.toString(16).padStart(2, "0");

export function tosStatements(a: { value: number; mask?: number }, fam: Fam, ctx: Ctx, path: Path): string[][] {
  const mask = a.mask ?? 0xff;
  const p = fam === "ipv4" ? "ip" : "ip6";
  const fields = FIELDS.map((f) => ({ ...f, kept: (~mask >> f.shift) & f.max, v: (a.value >> f.shift) & f.max }))
    // A field whose bits are all kept and not flipped does not change.
    .filter((f) => f.kept !== f.max || f.v !== 0);
  // Fields the mask clears completely get a constant.
  const constant = fields.filter((f) => f.kept === 0).map((f) => `${p} ${f.name} set 0x${hex2(f.v)}`);
  const cased = fields.filter((f) => f.kept !== 0);
  if (cased.length === 0) return [constant];
  // The others: a chain per field, one case per pattern of its kept bits (at most 64 for
  // dscp, 4 for ecn), each ending in return (the new value may match a later case); the
  // fields are independent, so one after the other.
  const tag = `${hex2(a.value)}_${hex2(mask)}_${fam === "ipv4" ? "v4" : "v6"}`;
  const what = `tos 0x${hex2(a.value)}/0x${hex2(mask)}`;
  const famName = fam === "ipv4" ? "IPv4" : "IPv6";
  const chain = (name: string, comment: string) => ({
    kind: "chain" as const,
    family: FAMILY,
    table: TABLE,
    name,
    comment,
  });
  const main = `tos_${tag}`;
  const mainRules = constant.length ? [{ body: constant.join(" "), comment: what }] : [];
  for (const f of cased) {
    const name = `tos_${tag}_${f.name}`;
    const rules = subsets(f.kept).map((pat) => ({
      body: `${p} ${f.name} & 0x${hex2(f.kept)} == 0x${hex2(pat)} ${p} ${f.name} set 0x${hex2(pat ^ f.v)} return`,
      comment: what,
    }));
    ctx.declareChain(
      chain(
        name,
        `TOS value 0x${hex2(a.value)} mask 0x${hex2(mask)} (${famName}): ${f.name}, one case per pattern of its kept bits`,
      ),
      rules,
      what,
      path,
    );
    mainRules.push({ body: `jump ${name}`, comment: what });
  }
  ctx.declareChain(
    chain(main, `TOS value 0x${hex2(a.value)} mask 0x${hex2(mask)} (${famName})`),
    mainRules,
    what,
    path,
  );
  return [[`jump ${main}`]];
}

function _popcount(n: number): number {
  let c = 0;
  for (let x = n; x; x &= x - 1) c++;
  return c;
}

/** Every value whose bits are a subset of `bits`, ascending. */
function subsets(bits: number): number[] {
  const out: number[] = [];
  for (let s = bits; ; s = (s - 1) & bits) {
    out.push(s);
    if (s === 0) break;
  }
  return out.reverse();
}
