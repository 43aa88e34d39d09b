// `palisade quotas`: the fleet's quota2 state over REST.
//   ls [--host H] [--name N] [-o ...]    every quota per host: mode, limit, used, remaining;
//                                         a growing quota (--grow) shows "grow" and no
//                                         limit or remaining
//   reset HOST NAME                       zero a quota (or growing counter) on one host:
//                                         the API records and forwards the request; the
//                                         agent resets the kernel object and answers
import type { Command } from "commander";
import { relative } from "../time.ts";
import { aligned, data, formatOf, out, withOutput } from "../output.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";

type Counter = number | string;
interface Quota {
  hostId: string;
  host: string;
  name: string;
  mode: "bytes" | "packets";
  grow: boolean;
  limit: Counter;
  used: Counter;
  remaining: Counter | null;
  sampledAt: string | null;
}

/** Aligned columns, one line per quota (wide: when it was sampled). */
export function quotaLines(items: Quota[], wide = false): string[] {
  const rows = [["HOST", "NAME", "MODE", "KIND", "LIMIT", "USED", "REMAINING", ...(wide ? ["SAMPLED"] : [])]];
  for (const q of items) {
    rows.push([
      q.host,
      q.name,
      q.mode,
      q.grow ? "grow" : "quota",
      q.grow ? "-" : String(q.limit),
      String(q.used),
      q.remaining === null ? "-" : String(q.remaining),
      ...(wide ? [relative(q.sampledAt)] : []),
    ]);
  }
  return aligned(rows);
}

export function register(program: Command): void {
  const quotas = program.command("quotas").description("quota2 quotas and growing counters of the fleet");
  withOutput(
    withRestOptions(
      quotas
        .command("ls")
        .alias("list")
        .description("every quota per host: mode, limit, used, remaining (growing counters: used only)")
        .option("--host <host>", "only this host (id or name)")
        .option("--name <name>", "only quotas of this name"),
    ),
  ).action(async (o: RestOptions & { host?: string; name?: string; json?: boolean; output?: string }) => {
    const items = await new Rest(o).all<Quota>("/v1/quotas", { host: o.host, name: o.name });
    const f = formatOf(o);
    out(f === "json" || f === "yaml" ? data(items, f) : quotaLines(items, f === "wide").join("\n") + "\n");
  });
  withRestOptions(
    quotas
      .command("reset")
      .description("zero a quota or growing counter on one host (the agent resets the kernel object)")
      .argument("<host>", "host id or name")
      .argument("<name>", "quota name"),
  ).action(async (host: string, name: string, o: RestOptions) => {
    const r = await new Rest(o).request<{ requestId: string; delivered: boolean }>(
      "POST",
      `/v1/hosts/${encodeURIComponent(host)}/quotas/${encodeURIComponent(name)}/reset`,
    );
    process.stdout.write(
      `reset of quota ${name} on ${host} requested (${r.requestId}): ${r.delivered ? "sent to the agent" : "the agent gets it when it connects"}\n`,
    );
  });
}
