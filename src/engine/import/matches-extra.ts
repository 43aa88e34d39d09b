// iptables match modules for the extra match keys (policy/match-extra.ts): owner, iprange.
// (conntrack --ctstate DNAT/SNAT and --ctstatus live with the conntrack module; -f with the
// core options in iptables.ts.)
import { AddressRange } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import { negate, setMatch, type OptionValue, type Options, type RuleDraft } from "./rule-draft.ts";

/** The shape of matches.ts's ModuleSpec (kept structural so the two files do not import each other). */
interface ExtraModule {
  options: Record<string, { arity: 0 | 1 | 2; neg?: boolean }>;
  build(o: Options, d: RuleDraft): void;
}

const negArg = { arity: 1 as const, neg: true };
const val = (o: OptionValue) => o.value ?? "";

/** A uid/gid, a range, or root (the one name with the same id everywhere). */
function ownerId(o: OptionValue, what: string): number | string {
  const t = val(o);
  if (t === "root") return 0;
  if (/^\d{1,10}$/.test(t) && Number(t) <= 0xffffffff) return Number(t);
  const m = /^(\d{1,10})-(\d{1,10})$/.exec(t);
  if (m && Number(m[1]) <= Number(m[2]) && Number(m[2]) <= 0xffffffff) return Number(m[1]) === Number(m[2]) ? Number(m[1]) : t;
  if (/^[a-z_][a-z0-9_-]*\$?$/i.test(t)) fail("import_unsupported", `${what} ${t}: user and group names are resolved on the host that runs the rule; write the numeric id`, t);
  return fail("import_invalid_value", `${t} is not a ${what.includes("gid") ? "group" : "user"} id or range`, t);
}

const owner: ExtraModule = {
  options: { "--uid-owner": negArg, "--gid-owner": negArg, "--socket-exists": { arity: 0, neg: true }, "--suppl-groups": { arity: 0 } },
  build(o, d) {
    for (const k of ["--socket-exists", "--suppl-groups"]) {
      const x = o.get(k);
      if (x) fail("import_unsupported", `owner ${k} has no equivalent in the policy schema (--uid-owner and --gid-owner do)`, x.opt);
    }
    const u = o.get("--uid-owner");
    if (u) setMatch(d, "skuid", negate(u.neg, ownerId(u, "--uid-owner")), u.opt);
    const g = o.get("--gid-owner");
    if (g) setMatch(d, "skgid", negate(g.neg, ownerId(g, "--gid-owner")), g.opt);
  },
};

const iprange: ExtraModule = {
  options: { "--src-range": negArg, "--dst-range": negArg },
  build(o, d) {
    for (const [opt, key] of [["--src-range", "saddrRange"], ["--dst-range", "daddrRange"]] as const) {
      const x = o.get(opt);
      if (!x) continue;
      if (!AddressRange.safeParse(val(x)).success) fail("import_invalid_value", `${val(x)} is not an address range first-last (one family, first <= last)`, val(x));
      setMatch(d, key, negate(x.neg, val(x)), x.opt);
    }
  },
};

export const EXTRA_MODULES = { owner, iprange };
