// expandPolicy: protection presets -> plain chains, rules and objects that the render
// shows, so an operator can read exactly what a preset does (every rule's comment names
// its preset).
//
// Design choice: presets live in dedicated user chains protect_prerouting (table raw),
// protect_input, protect_forward, protect_output (table filter), entered by a jump inserted
// as the FIRST rule of the user's first base chain (by name) at that table and hook; when
// the user has no such chain, a base chain protect_<hook>_base (policy accept) is created.
// A jump (rather than a second base chain at an earlier priority) because the policy
// schema has no chain priority, and because one jump keeps stateful presets (meters, rate
// limits) from counting a packet twice. Presets only drop (port knocking's opened port
// aside), so jumping first never lets through what the user's rules would drop.
// In forward, ESTABLISHED packets that no preset rule there can match return right after the
// port-scan ban check (established-skip.ts). The nftables compiler runs the prerouting slot
// (anti-spoofing) after conntrack, once per connection direction (compile/nft/anti-spoofing.ts).
// Deterministic: fixed preset order, chains by name, no clocks or randomness.
import type { Chain, Policy, Rule } from "../policy/index.ts";
import { antiSpoofing } from "./anti-spoofing.ts";
import { bogusPackets } from "./bogus-packets.ts";
import { icmpFlood, rstFlood, synFlood } from "./floods.ts";
import { isBanCheck, portScanTrap } from "./port-scan-trap.ts";
import { portKnock } from "./port-knock.ts";
import { spaKnock } from "./spa-knock.ts";
import { forwardEstablishedSkip } from "./established-skip.ts";
import { SLOTS, SLOT_TABLE, comment, protectBaseChain, protectChain, type PresetOutput, type Slot } from "./types.ts";

export { presetNames } from "./names.ts";
export { spaList, spaLogPrefix } from "./spa-knock.ts";

/** The preset outputs in the order their rules run. */
function outputs(policy: Policy): PresetOutput[] {
  const p = policy.protections;
  const out: PresetOutput[] = [];
  if (p.antiSpoofing) out.push(antiSpoofing(p.antiSpoofing));
  if (p.bogusPackets) out.push(bogusPackets(p.bogusPackets));
  if (p.portScanTrap) out.push(portScanTrap(p.portScanTrap));
  if (p.icmpFlood) out.push(icmpFlood(p.icmpFlood));
  if (p.rstFlood) out.push(rstFlood(p.rstFlood));
  if (p.synFlood) out.push(synFlood(p.synFlood));
  for (const k of p.portKnock ?? []) out.push(portKnock(k));
  for (const k of p.spaKnock ?? []) out.push(spaKnock(k));
  return out;
}

/**
 * Expand a validated policy. The result has no protections left and validates on its own.
 * Throws if a generated name is already taken; validatePolicy reports that as
 * `preset_name_conflict` first, so callers that validate never see the throw.
 */
export function expandPolicy(policy: Policy): Policy {
  const outs = outputs(policy);
  const expanded: Policy = structuredClone(policy);
  expanded.protections = {};
  if (outs.length === 0) return expanded;

  const chains: Record<string, Chain> = { ...expanded.chains };
  const claim = (name: string, chain: Chain) => {
    if (Object.hasOwn(policy.chains, name))
      throw new Error(`expandPolicy: chain name "${name}" is already used by the policy`);
    chains[name] = chain;
  };
  for (const slot of SLOTS) {
    const rules = orderSlot(
      outs.flatMap((o) => o.rules[slot] ?? []),
      slot === "forward" ? forwardEstablishedSkip(policy.protections) : [],
    );
    if (rules.length === 0) continue;
    const table = SLOT_TABLE[slot];
    const name = protectChain(slot);
    claim(name, { table, comment: `protection presets at ${slot}`, rules });
    const jump: Rule = { comment: comment("protections", `run ${name} first`), action: { type: "jump", chain: name } };
    const entry = Object.keys(policy.chains)
      .sort()
      .find((n) => policy.chains[n]!.table === table && policy.chains[n]!.hook === slot);
    if (entry) chains[entry] = { ...chains[entry]!, rules: [jump, ...chains[entry]!.rules] };
    else
      claim(protectBaseChain(slot), {
        table,
        hook: slot,
        policy: "accept",
        comment: `base chain for the protection presets at ${slot}`,
        rules: [jump],
      });
  }
  for (const o of outs) for (const [name, chain] of Object.entries(o.chains ?? {})) claim(name, chain);
  expanded.chains = Object.fromEntries(Object.entries(chains).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

  const counters = { ...expanded.counters };
  for (const o of outs) {
    for (const [name, def] of Object.entries(o.counters ?? {})) {
      if (Object.hasOwn(policy.counters, name))
        throw new Error(`expandPolicy: counter name "${name}" is already used by the policy`);
      counters[name] = def;
    }
  }
  expanded.counters = counters;
  return expanded;
}

/**
 * Port-scan bans run before the other presets' rules in a slot (a banned source gets nothing);
 * `skip` (forward: established-skip.ts) goes between the bans and the rest.
 */
function orderSlot(rules: Rule[], skip: Rule[]): Rule[] {
  const rest = rules.filter((r) => !isBanCheck(r));
  return [...rules.filter(isBanCheck), ...(rest.length ? skip : []), ...rest];
}

export type { Slot };
