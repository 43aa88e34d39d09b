// `palisade audit ls`: who changed what, when (newest first).
import type { Command } from "commander";
import { parseCount } from "../args.ts";
import { formatOf, printList, when, withOutput, type Column } from "../output.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";
import { parseWhen } from "../time.ts";

interface Entry {
  id: string;
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown>;
  at: string;
}

const COLUMNS: Column<Entry>[] = [
  when("AT", (e) => e.at),
  { header: "ACTOR", value: (e) => e.actor },
  { header: "ACTION", value: (e) => e.action },
  { header: "TARGET", value: (e) => e.target },
  { header: "ID", value: (e) => e.id, wide: true },
  { header: "DETAILS", value: (e) => JSON.stringify(e.details), wide: true },
];

export function register(program: Command): void {
  const audit = program.command("audit").description("the audit log: ls (who changed what, when)");
  withOutput(
    withRestOptions(
      audit
        .command("ls")
        .alias("list")
        .description("audit entries, newest first")
        .option("--actor <name>", "only this actor (token name)")
        .option("--action <action>", "only this action, e.g. ruleset.version.create")
        .option("--target <prefix>", "targets starting with this, e.g. ruleset:web")
        .option("--since <when>", "from this long ago (15m, 1h, 2d) or this RFC 3339 time (same as --from)")
        .option("--from <when>", "from this time (15m, 1h, 2d back, or RFC 3339)")
        .option("--to <when>", "until this time")
        .option("--limit <n>", "at most this many", "100"),
    ),
  ).action(
    async (
      o: RestOptions & {
        actor?: string;
        action?: string;
        target?: string;
        since?: string;
        from?: string;
        to?: string;
        limit: string;
        output?: string;
        json?: boolean;
      },
    ) => {
      const q = {
        actor: o.actor,
        action: o.action,
        target: o.target,
        from: parseWhen(o.from ?? o.since, o.from ? "--from" : "--since"),
        to: parseWhen(o.to, "--to"),
      };
      printList(await new Rest(o).all<Entry>("/v1/audit", q, parseCount(o.limit, "--limit")), COLUMNS, formatOf(o));
    },
  );
}
