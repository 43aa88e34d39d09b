// `palisade geoip`: the country data of the geoip match, owned by the server (docs/geoip.md).
//   update [--file CSV]   replace the data: the operator's CSV (start,end,country; IPv4 and
//                         IPv6), or without --file the npm package installed beside the
//                         server. Refused whole at the first bad line (named), nothing stored.
//                         Agents get element deltas for the countries their policy uses.
//                         Refused (geoip_would_empty) when it leaves a country a deployed
//                         version tests with no ranges, unless --allow-empty.
//   ls [-o ...]           the last load and each country's interval counts
import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import type { Command } from "commander";
import { CliError, EXIT } from "../errors.ts";
import { aligned, data, formatOf, out, withOutput } from "../output.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";

interface LoadResult {
  revision: number;
  source: string;
  ranges: number;
  countries: number;
  intervals: number;
  changed: string[];
  emptiedInUse: string[];
  hosts: number;
  delivered: number;
  parseMs: number;
  storeMs: number;
}

interface Stored {
  dataset: {
    revision: number;
    source: string;
    ranges: number;
    countries: number;
    loadedBy: string;
    loadedAt: string | null;
  } | null;
  countries: { country: string; ipv4: number; ipv6: number; revision: number }[];
}

/** Progress goes to stderr, so `-o json` output stays clean. */
const progress = (s: string) => process.stderr.write(`${s}\n`);
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

export function register(program: Command): void {
  const geoip = program
    .command("geoip")
    .description("country data of the geoip match: update [--file CSV], ls (no ruleset version)");
  withOutput(
    withRestOptions(
      geoip
        .command("update")
        .description(
          "replace the server's country data: a CSV (start,end,country) or, without --file, the npm package installed beside the server",
        )
        .option("--file <csv>", "start,end,country lines, IPv4 and IPv6 (xt_geoip's build-script layout)")
        .option(
          "--allow-empty",
          "store even when a country that a deployed or deploying ruleset version tests would have no ranges (its sets are emptied on those hosts)",
        ),
    ),
  ).action(async (o: RestOptions & { file?: string; allowEmpty?: boolean; json?: boolean; output?: string }) => {
    let body: object;
    if (o.file) {
      const size = (
        await stat(o.file).catch((e: Error) => {
          throw new CliError("file_unreadable", `cannot read ${o.file}: ${e.message}`, EXIT.usage);
        })
      ).size;
      progress(`reading ${o.file} (${mb(size)})`);
      const csv = await readFile(o.file, "utf8");
      const lines = csv.split("\n").length;
      progress(`sending ${lines.toLocaleString("en")} lines to the server`);
      body = { csv, source: basename(o.file) };
    } else {
      progress("asking the server to load the npm package installed beside it");
      body = { package: true };
    }
    if (o.allowEmpty) body = { ...body, allowEmpty: true };
    const t0 = Date.now();
    const r = await new Rest(o).request<LoadResult>("POST", "/v1/geoip", body, { timeoutMs: 300_000 });
    const f = formatOf(o);
    if (r.emptiedInUse.length)
      progress(
        `warning: ${r.emptiedInUse.join(", ")} now have no ranges and deployed versions test them (--allow-empty): their sets are empty on those hosts`,
      );
    if (f === "json" || f === "yaml") return out(data(r, f));
    progress(
      `stored in ${((Date.now() - t0) / 1000).toFixed(1)} s (parse ${Math.round(r.parseMs)} ms, store ${Math.round(r.storeMs)} ms)`,
    );
    out(
      `geoip revision ${r.revision} from ${r.source}: ${r.ranges.toLocaleString("en")} ranges, ${r.countries} countries, ${r.intervals.toLocaleString("en")} intervals after merging; ${r.changed.length} countries changed${r.changed.length && r.changed.length <= 20 ? ` (${r.changed.join(", ")})` : ""}; ${r.hosts} geoip host(s) told, ${r.delivered} online now\n`,
    );
  });
  withOutput(
    withRestOptions(
      geoip.command("ls").alias("list").description("the stored country data: last load, per-country intervals"),
    ),
  ).action(async (o: RestOptions & { json?: boolean; output?: string }) => {
    const r = await new Rest(o).get<Stored>("/v1/geoip");
    const f = formatOf(o);
    if (f === "json" || f === "yaml") return out(data(r, f));
    if (!r.dataset) return out("no country data loaded: palisade geoip update [--file CSV]\n");
    const d = r.dataset;
    const lines = [
      `revision ${d.revision} from ${d.source}, loaded by ${d.loadedBy} at ${d.loadedAt ?? "?"}: ${d.ranges} ranges, ${d.countries} countries`,
      ...aligned([
        ["COUNTRY", "IPV4", "IPV6", "REVISION"],
        ...r.countries.map((c) => [c.country, String(c.ipv4), String(c.ipv6), String(c.revision)]),
      ]),
    ];
    out(lines.join("\n") + "\n");
  });
}
