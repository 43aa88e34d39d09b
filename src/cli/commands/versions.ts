// `palisade versions ls NAME` (newest first) and `versions show NAME[@V]` (the stored
// document; table output prints it as YAML after a few summary lines).
import type { Command } from "commander";
import { parseCount } from "../args.ts";
import { stringify } from "yaml";
import { formatOf, printList, printOne, when, withOutput, type Column } from "../output.ts";
import { resolveRef } from "../ref.ts";
import { Rest, seg, withRestOptions, type RestOptions } from "../rest.ts";
import { relative } from "../time.ts";

interface Version {
  ruleset: string;
  version: number;
  checksum: string;
  author: string;
  message: string;
  createdAt: string;
  document?: unknown;
}

const COLUMNS: Column<Version>[] = [
  { header: "VERSION", value: (v) => v.version },
  when("CREATED", (v) => v.createdAt),
  { header: "AUTHOR", value: (v) => v.author },
  { header: "CHECKSUM", value: (v) => v.checksum.slice(0, 12) },
  { header: "FULL CHECKSUM", value: (v) => v.checksum, wide: true },
  { header: "MESSAGE", value: (v) => v.message },
];

type Opts = RestOptions & { output?: string; json?: boolean; limit?: string };

export function register(program: Command): void {
  const versions = program.command("versions").description("a ruleset's immutable versions: ls NAME, show NAME[@V]");
  withOutput(
    withRestOptions(
      versions
        .command("ls")
        .alias("list")
        .description("a ruleset's versions, newest first")
        .argument("<ruleset>", "ruleset name")
        .option("--limit <n>", "at most this many"),
    ),
  ).action(async (name: string, o: Opts) => {
    const max = o.limit === undefined ? undefined : parseCount(o.limit, "--limit");
    printList(await new Rest(o).all<Version>(`/v1/rulesets/${seg(name)}/versions`, {}, max), COLUMNS, formatOf(o));
  });
  withOutput(
    withRestOptions(
      versions
        .command("show")
        .description("one version with its policy document")
        .argument("<ref>", "NAME@VERSION, or NAME for the latest"),
    ),
  ).action(async (ref: string, o: Opts) => {
    const rest = new Rest(o);
    const r = await resolveRef(rest, ref);
    const v = await rest.get<Version>(`/v1/rulesets/${seg(r.ruleset)}/versions/${r.version}`);
    printOne(v, formatOf(o), (x) => [
      `# ${x.ruleset}@${x.version} by ${x.author}, ${relative(x.createdAt)} (${x.createdAt})`,
      `# checksum ${x.checksum}`,
      ...(x.message ? [`# ${x.message.replace(/\n/g, "\n# ")}`] : []),
      stringify(x.document, { lineWidth: 0 }).trimEnd(),
    ]);
  });
}
