// `palisade conditions`: operator conditions over REST (docs/conditions.md).
//   ls [NAME] [--host H] [-o ...]            rows by name, newest first; with --host, the
//                                             value each condition has on that host
//   set NAME on|off [--hosts a,b | --labels k=v]
//                                             for the selected hosts (default every host);
//                                             no ruleset version, one set element per host
import type { Command } from "commander";
import { usageError } from "../errors.ts";
import { aligned, data, formatOf, out, withOutput } from "../output.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";
import { selectorBody, selectorText, withSelectorOptions, type SelectorView } from "../selector.ts";
import { relative } from "../time.ts";

interface Condition {
  name: string;
  on: boolean;
  selector: SelectorView;
  setBy: string;
  setAt: string;
}

/** Aligned columns, one line per row (wide: who). */
export function conditionLines(items: Condition[], wide = false): string[] {
  const rows = [["NAME", "VALUE", "HOSTS", "SET", ...(wide ? ["BY"] : [])]];
  for (const c of items)
    rows.push([c.name, c.on ? "on" : "off", selectorText(c.selector), relative(c.setAt), ...(wide ? [c.setBy] : [])]);
  return aligned(rows);
}

export function register(program: Command): void {
  const conditions = program
    .command("conditions")
    .description("operator conditions (xt_condition flags): ls, set NAME on|off (no ruleset version)");
  withOutput(
    withRestOptions(
      conditions
        .command("ls")
        .alias("list")
        .description("condition values by name, newest first")
        .argument("[name]", "only this condition")
        .option("--host <host>", "only rows that pick this host (id or name), with the value it has there"),
    ),
  ).action(async (name: string | undefined, o: RestOptions & { host?: string; json?: boolean; output?: string }) => {
    const r = await new Rest(o).get<{ items: Condition[]; effective?: Record<string, boolean> }>("/v1/conditions", {
      name,
      host: o.host,
    });
    const f = formatOf(o);
    if (f === "json" || f === "yaml") return out(data(r.effective ? r : r.items, f));
    const lines = conditionLines(r.items, f === "wide");
    if (r.effective) {
      lines.push("", `on ${o.host}:`);
      for (const [n, on] of Object.entries(r.effective)) lines.push(`  ${n} ${on ? "on" : "off"}`);
    }
    out(lines.join("\n") + "\n");
  });
  withOutput(
    withRestOptions(
      withSelectorOptions(
        conditions
          .command("set")
          .description("turn a condition on or off for the selected hosts (default every host)")
          .argument("<name>", "condition name (1-27 letters, digits or '_')")
          .argument("<value>", "on or off"),
      ),
    ),
  ).action(
    async (
      name: string,
      value: string,
      o: RestOptions & { hosts?: string; labels?: string[]; json?: boolean; output?: string },
    ) => {
      if (value !== "on" && value !== "off")
        throw usageError(`conditions set: the value must be "on" or "off", not ${JSON.stringify(value)}`);
      const selector = selectorBody(o);
      const r = await new Rest(o).request<{
        item: Condition;
        hosts: number;
        delivered: number;
        unsupported: string[];
      }>("PUT", `/v1/conditions/${encodeURIComponent(name)}`, { on: value === "on", ...(selector && { selector }) });
      const f = formatOf(o);
      if (f === "json" || f === "yaml") return out(data(r, f));
      out(
        `condition ${name} ${value} for ${selectorText(r.item.selector)}: ${r.hosts} host(s), ${r.delivered} online now (the others get it when they connect)\n`,
      );
      if (r.unsupported.length)
        out(`not applied (agent older than conditions, upgrade it): ${r.unsupported.join(", ")}\n`);
    },
  );
}
