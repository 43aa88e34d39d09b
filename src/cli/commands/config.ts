// `palisade config`: the contexts of the config file (contexts.ts) that `palisade login`
// writes. get-contexts never prints tokens.
import type { Command } from "commander";
import { configPath, readConfig, writeConfig } from "../contexts.ts";
import { CliError, EXIT } from "../errors.ts";
import { formatOf, out, printList, withOutput } from "../output.ts";

export function register(program: Command): void {
  const config = program
    .command("config")
    .description(
      "contexts of ~/.config/palisade/config.yaml: get-contexts, use-context NAME, current-context, delete-context NAME",
    );
  withOutput(
    config.command("get-contexts").description("every context: name, server, whether current (never the token)"),
  ).action(async (o: { output?: string; json?: boolean }) => {
    const c = await readConfig();
    const items = c.contexts.map((x) => ({ name: x.name, server: x.server, current: x.name === c["current-context"] }));
    printList(
      items,
      [
        { header: "CURRENT", value: (x) => (x.current ? "*" : "") },
        { header: "NAME", value: (x) => x.name },
        { header: "SERVER", value: (x) => x.server },
      ],
      formatOf(o),
    );
  });
  config
    .command("current-context")
    .description("the name of the current context")
    .action(async () => {
      const name = (await readConfig())["current-context"];
      if (name === undefined)
        throw new CliError(
          "not_found",
          `no current context in ${configPath()}`,
          EXIT.notFound,
          [],
          "run `palisade login --server URL --token-file FILE`",
        );
      out(name + "\n");
    });
  config
    .command("use-context")
    .description("make a context the current one")
    .argument("<name>", "context name")
    .action(async (name: string) => {
      const c = await readConfig();
      if (!c.contexts.some((x) => x.name === name)) {
        throw new CliError(
          "not_found",
          `context "${name}" not found in ${configPath()}`,
          EXIT.notFound,
          [],
          "`palisade config get-contexts` lists them; `palisade login --context NAME ...` adds one",
        );
      }
      c["current-context"] = name;
      await writeConfig(c);
      out(`context "${name}" is current\n`);
    });
  config
    .command("delete-context")
    .description("remove a context (and its token) from the file")
    .argument("<name>", "context name")
    .action(async (name: string) => {
      const c = await readConfig();
      if (!c.contexts.some((x) => x.name === name))
        throw new CliError("not_found", `context "${name}" not found in ${configPath()}`, EXIT.notFound);
      c.contexts = c.contexts.filter((x) => x.name !== name);
      if (c["current-context"] === name) delete c["current-context"];
      await writeConfig(c);
      out(`context "${name}" deleted\n`);
    });
}
