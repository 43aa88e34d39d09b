// Names the presets create, so the validator can refuse a policy that already uses them.
import type { Policy } from "../policy/index.ts";
import { SYN_FLOOD_METER } from "./floods.ts";
import { PORTSCAN_LIST } from "./port-scan-trap.ts";
import { knockNames } from "./port-knock.ts";
import { spaList } from "./spa-knock.ts";
import { SLOTS, protectBaseChain, protectChain } from "./types.ts";

export interface PresetNames {
  chains: string[];
  counters: string[];
  /** Recent lists and meters: kernel sets in nftables, so they must not collide with declared sets. */
  dynamic: string[];
}

export function presetNames(policy: Policy): PresetNames {
  const p = policy.protections;
  const out: PresetNames = { chains: [], counters: [], dynamic: [] };
  const any = Object.values(p).some((v) => v !== undefined && !(Array.isArray(v) && v.length === 0));
  if (!any) return out;
  for (const s of SLOTS) out.chains.push(protectChain(s), protectBaseChain(s));
  if (p.synFlood) {
    out.dynamic.push(SYN_FLOOD_METER);
    if (p.synFlood.burst === undefined) out.counters.push(SYN_FLOOD_METER);
  }
  if (p.portScanTrap) out.dynamic.push(PORTSCAN_LIST);
  for (const k of p.portKnock ?? []) {
    const n = knockNames(k);
    out.chains.push(...n.stepChains, n.resetChain);
    out.counters.push(n.resetCounter);
    out.dynamic.push(...n.steps, n.open);
  }
  for (const k of p.spaKnock ?? []) out.dynamic.push(spaList(k.name));
  return out;
}
