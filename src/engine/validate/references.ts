// Names a rule refers to must exist and fit: jump/goto targets, @sets, counters, quotas,
// accounting tables. Jump loops are refused (the kernel refuses them at load time too,
// with a far less helpful message).
import { error, type Diagnostic, type Path } from "../diagnostics.ts";
import { TUPLE_SET_TYPES, tupleFields, unwrap, type Policy } from "../policy/index.ts";
import { asList, rulesOf, sortedEntries } from "./model.ts";

export function referenceErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const r of rulesOf(policy)) {
    const a = r.action;
    const at: Path = [...r.path, "action"];
    if (a.type === "jump" || a.type === "goto") {
      const target = policy.chains[a.chain];
      if (!target)
        out.push(
          error(
            [...at, "chain"],
            "unknown_chain",
            `${a.type} to chain "${a.chain}", which this policy does not define`,
          ),
        );
      else if (target.hook)
        out.push(
          error(
            [...at, "chain"],
            "jump_to_base_chain",
            `chain "${a.chain}" is a base chain (hook ${target.hook}); only user chains (without hook) can be the target of ${a.type}`,
          ),
        );
      else if (target.table !== r.chain.table)
        out.push(
          error(
            [...at, "chain"],
            "jump_cross_table",
            `chain "${a.chain}" is in table ${target.table} but this rule is in table ${r.chain.table}; ${a.type} stays within one table`,
          ),
        );
    }
    if (a.type === "counter" && !Object.hasOwn(policy.counters, a.name)) {
      out.push(error([...at, "name"], "unknown_counter", `counter "${a.name}" is not declared under counters`));
    }
    if (a.type === "setUpdate") {
      const set = policy.sets[a.set];
      if (!set) out.push(error([...at, "set"], "unknown_set", `set "${a.set}" is not declared under sets`));
      else if (set.type !== "ipv4_addr" && set.type !== "ipv6_addr") {
        out.push(
          error(
            [...at, "set"],
            "set_type_mismatch",
            `set "${a.set}" holds ${set.type} elements; setUpdate adds addresses (ipv4_addr or ipv6_addr)`,
          ),
        );
      } else if (!set.dynamic) {
        out.push(
          error(
            [...at, "set"],
            "set_not_dynamic",
            `set "${a.set}" is updated by a rule: declare it with "dynamic: true"`,
          ),
        );
      }
    }
    if (a.type === "account" && !Object.hasOwn(policy.accounting, a.table)) {
      out.push(
        error(
          [...at, "table"],
          "unknown_accounting_table",
          `accounting table "${a.table}" is not declared under accounting (ACCOUNT needs its prefix)`,
        ),
      );
    }
    const q = r.match.quota;
    if (q && !Object.hasOwn(policy.quotas, q.name)) {
      out.push(
        error([...r.path, "match", "quota", "name"], "unknown_quota", `quota "${q.name}" is not declared under quotas`),
      );
    }
    for (const key of ["saddr", "daddr"] as const) {
      const m = r.match[key];
      if (m === undefined) continue;
      const { value, negated } = unwrap(m);
      const base: Path = [...r.path, "match", key, ...(negated ? ["not"] : [])];
      asList(value).forEach((item, i) => {
        if (!item.startsWith("@")) return;
        const p = Array.isArray(value) ? [...base, i] : base;
        const name = item.slice(1);
        const set = policy.sets[name];
        if (!set) out.push(error(p, "unknown_set", `set "${name}" is not declared under sets`));
        else if (set.type !== "ipv4_addr" && set.type !== "ipv6_addr") {
          out.push(
            error(
              p,
              "set_type_mismatch",
              `set "${name}" holds ${set.type} elements; an address match needs an ipv4_addr or ipv6_addr set`,
            ),
          );
        } else if (r.match.family && set.type !== (r.match.family === "ipv4" ? "ipv4_addr" : "ipv6_addr")) {
          out.push(
            error(
              p,
              "address_family_mismatch",
              `set "${name}" holds ${set.type} elements but the rule is restricted to ${r.match.family}`,
            ),
          );
        }
      });
    }
    const ts = r.match.tupleSet;
    if (ts !== undefined) {
      const { value, negated } = unwrap(ts);
      const base: Path = [...r.path, "match", "tupleSet", ...(negated ? ["not"] : [])];
      const set = policy.sets[value.set];
      const fields = set ? tupleFields(set.type) : undefined;
      if (!set) out.push(error([...base, "set"], "unknown_set", `set "${value.set}" is not declared under sets`));
      else if (!fields)
        out.push(
          error(
            [...base, "set"],
            "set_type_mismatch",
            `set "${value.set}" holds ${set.type} elements; tupleSet looks up a tuple set (${TUPLE_SET_TYPES.join(", ")}); match a set of addresses with saddr/daddr "@${value.set}"`,
          ),
        );
      else if (value.directions.length !== fields.length)
        out.push(
          error(
            [...base, "directions"],
            "set_direction_count",
            `set "${value.set}" (${set.type}) has ${fields.length} fields, so the lookup needs ${fields.length} directions (as ipset's src,dst), not ${value.directions.length}`,
          ),
        );
      else if (r.match.family && !set.type.startsWith(r.match.family === "ipv4" ? "ipv4_addr" : "ipv6_addr"))
        out.push(
          error(
            [...base, "set"],
            "address_family_mismatch",
            `set "${value.set}" holds ${set.type} elements but the rule is restricted to ${r.match.family}`,
          ),
        );
    }
  }
  out.push(...loopErrors(policy));
  return out;
}

/** Depth-first search over jump/goto edges; a back edge closes a loop. */
function loopErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const state = new Map<string, "active" | "done">();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, "active");
    stack.push(name);
    const chain = policy.chains[name]!;
    chain.rules.forEach((rule, index) => {
      const a = typeof rule.action === "string" ? null : rule.action;
      if (!a || (a.type !== "jump" && a.type !== "goto") || !Object.hasOwn(policy.chains, a.chain)) return;
      const s = state.get(a.chain);
      if (s === "active") {
        const cycle = [...stack.slice(stack.indexOf(a.chain)), a.chain].join(" -> ");
        out.push(
          error(
            ["chains", name, "rules", index, "action", "chain"],
            "chain_loop",
            `jumping to "${a.chain}" here closes a loop (${cycle}); packets would never leave it, and the kernel refuses such rulesets`,
          ),
        );
      } else if (s === undefined) visit(a.chain);
    });
    stack.pop();
    state.set(name, "done");
  };
  for (const [name] of sortedEntries(policy.chains)) if (!state.has(name)) visit(name);
  return out;
}
