// Port knocking (xtables-addons pknock, TCP mode) with recent lists, one per step:
//   knock k1            -> source into list pk_N_1, dropped
//   knock ki (i > 1)    -> if in pk_N_(i-1) within knockTimeoutSeconds: into pk_N_i (or, at
//                          the last step, into pk_N_open), dropped; otherwise the sequence
//                          resets (strict): the source leaves every step list.
//   port                -> accepted for sources in pk_N_open within openSeconds, else dropped.
// A recent match and its list update cannot share one rule, so each step is a goto to a
// one-rule chain that records the step.
import type { Chain, Protections, Rule } from "../policy/index.ts";
import { comment, type PresetOutput } from "./types.ts";

type Knock = NonNullable<Protections["portKnock"]>[number];

export const knockNames = (k: { name: string; knockPorts: unknown[] }) => {
  const base = `pk_${k.name}`;
  const steps = k.knockPorts.map((_, i) => `${base}_${i + 1}`);
  return {
    steps,
    open: `${base}_open`,
    stepChains: k.knockPorts.map((_, i) => `${base}_step${i + 1}`),
    resetChain: `${base}_reset`,
    resetCounter: `${base}_resets`,
  };
};

export function portKnock(k: Knock): PresetOutput {
  const n = knockNames(k);
  const proto = k.protocol;
  const last = k.knockPorts.length - 1;
  const c = (what: string) => comment(`portKnock ${k.name}`, what);
  const rules: Rule[] = [
    {
      comment: c(`open ${proto} ${k.port} for ${k.openSeconds}s to sources that knocked`),
      match: {
        protocol: proto,
        dport: k.port,
        recent: { name: n.open, mode: "rcheck", seconds: k.openSeconds, side: "source" },
      },
      action: "accept",
    },
    {
      comment: c(`${proto} ${k.port} stays closed for everyone else`),
      match: { protocol: proto, dport: k.port },
      action: "drop",
    },
  ];
  const chains: Record<string, Chain> = {};
  k.knockPorts.forEach((port, i) => {
    const prev =
      i > 0
        ? {
            recent: {
              name: n.steps[i - 1]!,
              mode: "rcheck" as const,
              seconds: k.knockTimeoutSeconds,
              side: "source" as const,
            },
          }
        : {};
    rules.push({
      comment: c(`knock ${i + 1} of ${last + 1} on ${port}`),
      match: { protocol: proto, dport: port, ...prev },
      action: { type: "goto", chain: n.stepChains[i]! },
    });
    if (i > 0)
      rules.push({
        comment: c(`knock on ${port} out of order: start again`),
        match: { protocol: proto, dport: port },
        action: { type: "goto", chain: n.resetChain },
      });
    const record = i === last ? n.open : n.steps[i]!;
    chains[n.stepChains[i]!] = {
      table: "filter",
      comment: c(i === last ? "sequence complete: open the port" : `record knock ${i + 1}`),
      rules: [
        {
          comment: c(i === last ? "sequence complete" : `knock ${i + 1} seen`),
          match: { recent: { name: record, mode: "set", side: "source" } },
          action: "drop",
        },
      ],
    };
  });
  chains[n.resetChain] = {
    table: "filter",
    comment: c("wrong knock: forget the sequence so far"),
    rules: [
      ...n.steps.slice(0, last).map(
        (list): Rule => ({
          comment: c(`forget ${list}`),
          match: { recent: { name: list, mode: "remove", side: "source" } },
          action: { type: "counter", name: n.resetCounter },
        }),
      ),
      { comment: c("drop the wrong knock"), action: "drop" },
    ],
  };
  return { rules: { input: rules }, chains, counters: { [n.resetCounter]: { comment: c("sequence resets") } } };
}
