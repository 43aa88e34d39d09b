// The systemd unit's privileges (deploy/palisade-agent.service) as setpriv arguments, so
// kernel tests run agent code exactly as the unit would: its User (a non-root user is
// played by uid 65534), CapabilityBoundingSet, AmbientCapabilities, NoNewPrivileges.

/** The [Service] settings that decide the agent's privileges. */
export function unitPrivileges(unit: string): {
  user: string;
  bounding: string[];
  ambient: string[];
  noNewPrivileges: boolean;
} {
  const values = (key: string) =>
    [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].flatMap((m) => m[1]!.trim().split(/\s+/).filter(Boolean));
  const caps = (key: string) => values(key).map((c) => c.replace(/^CAP_/, "").toLowerCase());
  return {
    user: values("User")[0] ?? "root",
    bounding: caps("CapabilityBoundingSet"),
    ambient: caps("AmbientCapabilities"),
    noNewPrivileges: values("NoNewPrivileges")[0] === "true",
  };
}

/** setpriv arguments that put a process under those privileges. */
export function setprivArgs(p: ReturnType<typeof unitPrivileges>): string[] {
  const set = (caps: string[]) => ["-all", ...caps.map((c) => `+${c}`)].join(",");
  const uid = p.user === "root" ? "0" : "65534";
  return [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    `--bounding-set=${set(p.bounding)}`,
    ...(p.ambient.length ? [`--inh-caps=${set(p.ambient)}`, `--ambient-caps=${set(p.ambient)}`] : []),
    ...(p.noNewPrivileges ? ["--no-new-privs"] : []),
  ];
}

/** The node flags the unit's ExecStart= passes before the agent bundle (memory settings). */
export function unitNodeFlags(unit: string): string[] {
  const words = /^ExecStart=(.*)$/m.exec(unit)?.[1]?.trim().split(/\s+/) ?? [];
  const node = words.findIndex((w) => /(^|\/)node$/.test(w));
  const bundle = words.findIndex((w) => /\.[cm]?js$/.test(w));
  return node >= 0 && bundle > node ? words.slice(node + 1, bundle) : [];
}

/** The unit's Environment= settings of the process's allocator (MALLOC_*), which a bench must give the agent too. */
export function unitAllocatorEnv(unit: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of unit.matchAll(/^Environment=(MALLOC_[A-Z_]+)=(\S+)$/gm)) out[m[1]!] = m[2]!;
  return out;
}
