// `palisade dynamic`: what the kernels' dynamic sets hold per host, read live from the
// host's agent (port-scan trap bans, SYN-flood and recent meters), and lifting one element
// (docs/dynamic-sets.md).
//   ls --host H [--set S] [--limit N] [-o ...]   sets and their elements, time left
//   rm --host H SET ADDRESS                      lift one element (e.g. a trap ban) now
import type { Command } from "commander";
import { aligned, data, formatOf, out, withOutput } from "../output.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";

interface DynSet {
  name: string;
  type: string;
  owner: string;
  timeoutSeconds: number;
  size: number;
  rules: string[];
  total: number;
  elements: { address: string; timeoutSeconds: number; expiresSeconds: number }[];
}
interface Listing {
  host: string;
  readAt: string;
  sets: DynSet[];
}

const secs = (s: number) => {
  const t = Math.round(s);
  if (t >= 86_400) return `${Math.floor(t / 86_400)}d${Math.floor((t % 86_400) / 3600)}h`;
  if (t >= 3600) return `${Math.floor(t / 3600)}h${Math.floor((t % 3600) / 60)}m`;
  if (t >= 60) return `${Math.floor(t / 60)}m${t % 60}s`;
  return `${s < 10 ? s.toFixed(1) : t}s`;
};

/** One line per element (wide: the set's timeout and the rules that use it); empty sets are left out. */
export function dynamicLines(l: Listing, wide = false): string[] {
  const rows = [["SET", "OWNER", "ADDRESS", "EXPIRES", ...(wide ? ["TIMEOUT", "RULES"] : [])]];
  for (const s of l.sets)
    for (const e of s.elements)
      rows.push([
        s.name,
        s.owner,
        e.address,
        secs(e.expiresSeconds),
        ...(wide ? [secs(e.timeoutSeconds), s.rules.join(" | ") || "-"] : []),
      ]);
  const lines = aligned(rows);
  const more = l.sets.filter((s) => s.total > s.elements.length);
  for (const s of more) lines.push(`(${s.name}: ${s.total - s.elements.length} more not listed; --limit)`);
  if (rows.length === 1) lines.push(`(no elements in ${l.sets.length} dynamic set(s) of host ${l.host})`);
  return lines;
}

type Opts = RestOptions & { host: string; output?: string; json?: boolean };

export function register(program: Command): void {
  const dyn = program
    .command("dynamic")
    .description("what the kernels' dynamic sets hold per host (trap bans, SYN-flood, recent, meters): ls, rm");
  withOutput(
    withRestOptions(
      dyn
        .command("ls")
        .alias("list")
        .description("the host's dynamic sets and their elements, read live from its agent")
        .requiredOption("--host <host>", "host name or id")
        .option("--set <name>", "only this set")
        .option("--limit <n>", "elements per set at most", "1000"),
    ),
  ).action(async (o: Opts & { set?: string; limit?: string }) => {
    const l = await new Rest(o).request<Listing>(
      "GET",
      `/v1/hosts/${encodeURIComponent(o.host)}/dynamic-sets?${new URLSearchParams({
        limit: o.limit ?? "1000",
        ...(o.set && { set: o.set }),
      })}`,
    );
    const f = formatOf(o);
    out(f === "json" || f === "yaml" ? data(l, f) : dynamicLines(l, f === "wide").join("\n") + "\n");
  });
  withOutput(
    withRestOptions(
      dyn
        .command("rm")
        .alias("remove")
        .description("lift one element of a dynamic set on one host (e.g. a source the port-scan trap banned)")
        .requiredOption("--host <host>", "host name or id")
        .argument("<set>", "the dynamic set, as `dynamic ls` names it (e.g. recent_protect_portscan_v4)")
        .argument("<address>", "the element's address"),
    ),
  ).action(async (set: string, address: string, o: Opts) => {
    const r = await new Rest(o).request<{ host: string; set: string; address: string }>(
      "DELETE",
      `/v1/hosts/${encodeURIComponent(o.host)}/dynamic-sets/${encodeURIComponent(set)}/elements/${encodeURIComponent(address)}`,
    );
    const f = formatOf(o);
    if (f === "json" || f === "yaml") return out(data(r, f));
    out(`lifted ${r.address} from ${r.set} on host ${r.host}\n`);
  });
}
