// `palisade bans`: fleet-wide ban lists over REST (docs/bans.md).
//   add LIST ADDRESS|CIDR... [--ttl 1h] [--reason R] [--hosts a,b | --labels k=v]
//                                   ban on the selected hosts (default: every host); no
//                                   ruleset version; a ban already on the list is renewed
//   ls [LIST] [--host H] [-o ...]   active bans (expired ones are never listed)
//   rm LIST ADDRESS                 lift a ban everywhere it applies
import type { Command } from "commander";
import { aligned, data, formatOf, out, withOutput } from "../output.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";
import { selectorBody, selectorText, withSelectorOptions, type SelectorView } from "../selector.ts";
import { parseDuration, relative } from "../time.ts";

interface Ban {
  list: string;
  address: string;
  reason: string;
  selector: SelectorView;
  source: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  ttlSeconds: number;
}

/** Aligned columns, one line per ban (wide: who, when, source). */
export function banLines(items: Ban[], wide = false): string[] {
  const rows = [["LIST", "ADDRESS", "EXPIRES", "HOSTS", "REASON", ...(wide ? ["SOURCE", "BY", "CREATED"] : [])]];
  for (const b of items)
    rows.push([
      b.list,
      b.address,
      relative(b.expiresAt),
      selectorText(b.selector),
      b.reason || "-",
      ...(wide ? [b.source, b.createdBy, relative(b.createdAt)] : []),
    ]);
  return aligned(rows);
}

type AddOptions = RestOptions & {
  ttl?: string;
  reason?: string;
  hosts?: string;
  labels?: string[];
  output?: string;
  json?: boolean;
};

export function register(program: Command): void {
  const bans = program.command("bans").description("fleet-wide ban lists: add, ls, rm (no ruleset version)");
  withOutput(
    withRestOptions(
      withSelectorOptions(
        bans
          .command("add")
          .description("ban addresses or CIDRs on a list, on the selected hosts (default every host)")
          .argument("<list>", "ban list name (a lowercase word)")
          .argument("<addresses...>", "IPv4/IPv6 addresses or CIDRs")
          .option("--ttl <duration>", "how long the ban lasts (90s, 15m, 1h, 2d, 1w)", "4h")
          .option("--reason <text>", "why (shown in listings and the audit log)"),
      ),
    ),
  ).action(async (list: string, addresses: string[], o: AddOptions) => {
    const selector = selectorBody(o);
    const body = {
      list,
      addresses,
      ttlSeconds: parseDuration(o.ttl ?? "4h", "--ttl"),
      ...(o.reason && { reason: o.reason }),
      ...(selector && { selector }),
    };
    const r = await new Rest(o).request<{ items: Ban[]; hosts: number; delivered: number }>("POST", "/v1/bans", body);
    const f = formatOf(o);
    if (f === "json" || f === "yaml") return out(data(r, f));
    out(
      `banned ${addresses.length} on list ${list} for ${o.ttl ?? "4h"}: ${r.hosts} host(s), ${r.delivered} online now (the others get it when they connect)\n`,
    );
  });
  withOutput(
    withRestOptions(
      bans
        .command("ls")
        .alias("list")
        .description("active bans, by list and address")
        .argument("[list]", "only this list")
        .option("--host <host>", "only bans that apply to this host (id or name)"),
    ),
  ).action(async (list: string | undefined, o: RestOptions & { host?: string; json?: boolean; output?: string }) => {
    const items = await new Rest(o).all<Ban>("/v1/bans", { list, host: o.host });
    const f = formatOf(o);
    out(f === "json" || f === "yaml" ? data(items, f) : banLines(items, f === "wide").join("\n") + "\n");
  });
  withOutput(
    withRestOptions(
      bans
        .command("rm")
        .alias("remove")
        .description("lift a ban on every host it applies to")
        .argument("<list>", "ban list name")
        .argument("<address>", "the address or CIDR as banned"),
    ),
  ).action(async (list: string, address: string, o: RestOptions & { json?: boolean; output?: string }) => {
    const r = await new Rest(o).request<{ items: Ban[]; hosts: number; delivered: number }>(
      "DELETE",
      `/v1/bans/${encodeURIComponent(list)}/${encodeURIComponent(address)}`,
    );
    const f = formatOf(o);
    if (f === "json" || f === "yaml") return out(data(r, f));
    out(`lifted ${address} on list ${list}: ${r.hosts} host(s), ${r.delivered} online now\n`);
  });
}
