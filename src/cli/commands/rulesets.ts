// `palisade rulesets ls|show NAME`: named policies and their newest version.
import type { Command } from "commander";
import { formatOf, printList, printOne, when, withOutput, type Column } from "../output.ts";
import { Rest, seg, withRestOptions, type RestOptions } from "../rest.ts";
import { relative } from "../time.ts";

interface Ruleset {
  name: string;
  description: string;
  latestVersion: number | null;
  createdAt: string;
  updatedAt: string;
}

const COLUMNS: Column<Ruleset>[] = [
  { header: "NAME", value: (r) => r.name },
  { header: "LATEST", value: (r) => r.latestVersion },
  when("UPDATED", (r) => r.updatedAt),
  when("CREATED", (r) => r.createdAt, true),
  { header: "DESCRIPTION", value: (r) => r.description },
];

type Opts = RestOptions & { output?: string; json?: boolean };

export function register(program: Command): void {
  const rulesets = program
    .command("rulesets")
    .description("named policies: ls, show NAME (their versions: palisade versions)");
  withOutput(
    withRestOptions(rulesets.command("ls").alias("list").description("every ruleset with its latest version")),
  ).action(async (o: Opts) => {
    printList(await new Rest(o).all<Ruleset>("/v1/rulesets"), COLUMNS, formatOf(o));
  });
  withOutput(
    withRestOptions(rulesets.command("show").description("one ruleset").argument("<name>", "ruleset name")),
  ).action(async (name: string, o: Opts) => {
    printOne(await new Rest(o).get<Ruleset>(`/v1/rulesets/${seg(name)}`), formatOf(o), (r) => [
      `${r.name}`,
      `  latest version: ${r.latestVersion ?? "none yet"}`,
      `  description:    ${r.description || "-"}`,
      `  updated:        ${relative(r.updatedAt)} (${r.updatedAt})`,
      `  created:        ${relative(r.createdAt)} (${r.createdAt})`,
    ]);
  });
}
