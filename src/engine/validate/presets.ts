// Protection presets: the names their expansion creates must be free, and their options
// must make sense (expand/ builds the rules).
import { error, type Diagnostic } from "../diagnostics.ts";
import { parseRate, type Policy } from "../policy/index.ts";
import { SYN_FLOOD_MAX_EXACT } from "../expand/floods.ts";
import { presetNames } from "../expand/names.ts";
import { rulesOf } from "./model.ts";

export function presetErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const names = presetNames(policy);
  const why = "the protection presets create it; rename yours";
  for (const c of names.chains)
    if (Object.hasOwn(policy.chains, c))
      out.push(error(["chains", c], "preset_name_conflict", `chain name "${c}" is reserved: ${why}`));
  for (const c of names.counters)
    if (Object.hasOwn(policy.counters, c))
      out.push(error(["counters", c], "preset_name_conflict", `counter name "${c}" is reserved: ${why}`));
  const dynamic = new Set(names.dynamic);
  for (const s of Object.keys(policy.sets).sort())
    if (dynamic.has(s)) out.push(error(["sets", s], "preset_name_conflict", `set name "${s}" is reserved: ${why}`));
  for (const r of rulesOf(policy)) {
    for (const key of ["meter", "recent"] as const) {
      const name = r.match[key]?.name;
      if (name && dynamic.has(name))
        out.push(
          error([...r.path, "match", key, "name"], "preset_name_conflict", `${key} name "${name}" is reserved: ${why}`),
        );
    }
  }
  const sf = policy.protections.synFlood;
  if (sf && sf.burst === undefined && parseRate(sf.rate).count > SYN_FLOOD_MAX_EXACT) {
    out.push(
      error(
        ["protections", "synFlood", "rate"],
        "syn_flood_rate_too_high",
        `synFlood without burst counts each source's new connections exactly, at most ${SYN_FLOOD_MAX_EXACT} per second, minute, hour or day (${sf.rate} asks for more); give a burst for a token bucket instead`,
      ),
    );
  }
  const seen = new Map<string, number>();
  (policy.protections.portKnock ?? []).forEach((k, i) => {
    const at = ["protections", "portKnock", i];
    const prev = seen.get(k.name);
    if (prev !== undefined)
      out.push(
        error(
          [...at, "name"],
          "duplicate_port_knock",
          `port knock "${k.name}" is already defined at portKnock/${prev}`,
        ),
      );
    else seen.set(k.name, i);
    k.knockPorts.forEach((p, j) => {
      if (k.knockPorts.indexOf(p) !== j)
        out.push(
          error(
            [...at, "knockPorts", j],
            "port_knock_repeated_port",
            `knock port ${p} appears twice in the sequence; each step needs its own port`,
          ),
        );
      if (p === k.port)
        out.push(
          error(
            [...at, "knockPorts", j],
            "port_knock_port_in_sequence",
            `knock port ${p} is the port the sequence opens; knocks and the opened port must differ`,
          ),
        );
    });
  });
  const spaSeen = new Map<string, number>();
  (policy.protections.spaKnock ?? []).forEach((k, i) => {
    const at = ["protections", "spaKnock", i];
    const prev = spaSeen.get(k.name);
    if (prev !== undefined)
      out.push(
        error([...at, "name"], "duplicate_spa_knock", `spa knock "${k.name}" is already defined at spaKnock/${prev}`),
      );
    else spaSeen.set(k.name, i);
    if (k.protocol === "udp" && k.knockPort === k.port)
      out.push(
        error(
          [...at, "knockPort"],
          "spa_knock_port_is_open_port",
          `knock port udp ${k.knockPort} is the port the knock opens; knocks are dropped, so they must differ`,
        ),
      );
  });
  return out;
}
