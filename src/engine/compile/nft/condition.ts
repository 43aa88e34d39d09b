// `-m condition [!] --condition NAME` -> `meta nfproto [!=] @condition_NAME`, a set the
// agent fills with { ipv4, ipv6 } while the operator has the condition on for this host
// (engine/conditions, docs/conditions.md). Every packet of the inet table has one of the
// two, so the lookup is the flag itself; the set is declared once however many rules use it.
import type { Path } from "../../diagnostics.ts";
import { CONDITION_SET_TYPE, conditionSetName } from "../../conditions/names.ts";
import { unwrap, type Negatable } from "../../policy/index.ts";
import { FAMILY, TABLE, type Ctx } from "./context.ts";

export function conditionPart(c: Negatable<string>, ctx: Ctx, path: Path): string {
  const { value, negated } = unwrap(c);
  const name = conditionSetName(value);
  ctx.declareSet(
    { kind: "set", family: FAMILY, table: TABLE, name, type: CONDITION_SET_TYPE, flags: ["dynamic"] },
    `condition "${value}"`,
    path,
  );
  return `meta nfproto ${negated ? "!= " : ""}@${name}`;
}
