// The TTL action (iptables `-j TTL`, ip6tables `-j HL`) for one family. `set` is one
// statement, `ip ttl set N` / `ip6 hoplimit set N` (nft fixes the IPv4 header checksum).
// inc/dec: nft 1.0.6 sets a field only to a constant: `ip ttl set ip ttl + 1` is a syntax
// error, and `ip ttl set ip ttl map { ... }` is refused ("Value 8 exceeds valid range 0-0":
// the checksum-carrying 16-bit rewrite of ttl and protocol needs a shift nft 1.0.6 cannot
// encode), measured. So the new value is looked up: `ip ttl vmap { OLD : jump ttl_v4_NEW }`
// with one element per old value that changes, and a chain per new value holding the constant
// `ip ttl set NEW` (shared by every such action of the family). xt_HL saturates: inc stops at
// 255 and dec at 0, and a value that does not change is not written: those old values have no
// element, the lookup misses and the rule goes on, as XT_CONTINUE does.
import type { Path } from "../../diagnostics.ts";
import { FAMILY, TABLE, type Ctx, type Fam } from "./context.ts";

export interface TtlAction {
  set?: number | undefined;
  inc?: number | undefined;
  dec?: number | undefined;
}

/** The value xt_HL writes for `old` (the same value: nothing is written). */
export function ttlAfter(a: TtlAction, old: number): number {
  if (a.set !== undefined) return a.set;
  if (a.inc !== undefined) return Math.min(255, old + a.inc);
  return Math.max(0, old - (a.dec ?? 0));
}

export function ttlStatements(a: TtlAction, fam: Fam, ctx: Ctx, path: Path): string[][] {
  const field = fam === "ipv4" ? "ip ttl" : "ip6 hoplimit";
  if (a.set !== undefined) return [[`${field} set ${a.set}`]];
  const v = fam === "ipv4" ? "v4" : "v6";
  const what = a.inc !== undefined ? `inc ${a.inc}` : `dec ${a.dec}`;
  const elements: string[] = [];
  for (let old = 0; old <= 255; old++) {
    const now = ttlAfter(a, old);
    if (now === old) continue;
    const name = `ttl_${v}_${now}`;
    ctx.declareChain(
      {
        kind: "chain",
        family: FAMILY,
        table: TABLE,
        name,
        comment: `${fam === "ipv4" ? "TTL" : "hop limit"} ${now}: where TTL/HL inc/dec lookups jump to set it`,
      },
      // Shared by every inc/dec of the family: nothing in it names one action.
      [{ body: `${field} set ${now}`, comment: `ttl set ${now}` }],
      `ttl ${what}`,
      path,
    );
    elements.push(`${old} : jump ${name}`);
  }
  return [[`${field} vmap { ${elements.join(", ")} }`]];
}
