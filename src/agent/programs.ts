// The programs the agent runs, checked when it starts. Each missing one is reported to
// the API in Hello's capabilities (`missingPrograms`, shown by GET /v1/hosts/:id and
// `palisade hosts show`) with what stops working, so log events or ct marks never fail
// silently: an operator sees "log events unavailable: tcpdump not installed".

import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";

import type { Unavailable } from "../protocol/agent.ts";

/** Program -> what it is needed for (the reason text when it is missing). */
export const AGENT_PROGRAMS = {
  nft: "rulesets cannot be applied: nft not installed (Debian package nftables)",
  tcpdump: "log events unavailable: tcpdump not installed",
  conntrack: "ct marks of log events unavailable: conntrack not installed (Debian package conntrack)",
  ip: "interface names of log events unavailable: ip not installed (Debian package iproute2)",
  setpriv:
    "a killed agent's tcpdump outlives it and keeps its NFLOG group: setpriv not installed (Debian package util-linux)",
} as const;
export type AgentProgram = keyof typeof AGENT_PROGRAMS;

/** The executable file `name` resolves to on `pathEnv` (like a shell's lookup), or undefined. */
export function findProgram(name: string, pathEnv: string | undefined = process.env.PATH): string | undefined {
  const candidates = isAbsolute(name)
    ? [name]
    : (pathEnv ?? "")
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, name));
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface ProgramCheck {
  /** Absolute paths of the programs found. */
  found: Partial<Record<AgentProgram, string>>;
  missing: Unavailable[];
}

/** Look every agent program up on `pathEnv`. */
export function checkPrograms(pathEnv: string | undefined = process.env.PATH): ProgramCheck {
  const found: ProgramCheck["found"] = {};
  const missing: Unavailable[] = [];
  for (const [program, reason] of Object.entries(AGENT_PROGRAMS) as [AgentProgram, string][]) {
    const p = findProgram(program, pathEnv);
    if (p) found[program] = p;
    else missing.push({ program, reason });
  }
  return { found, missing };
}
