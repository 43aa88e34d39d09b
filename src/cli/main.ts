// The `palisade` command. Each verb lives in src/cli/commands/<verb>.ts and exports
// `register(program)`; they are discovered here, so adding a verb touches no other file.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Command } from "commander";

export interface CommandModule {
  register(program: Command): void;
}

const commandsDir = join(dirname(fileURLToPath(import.meta.url)), "commands");

export async function buildProgram(): Promise<Command> {
  const program = new Command("palisade")
    .description("Central firewall manager: versioned rulesets, nftables agents, per-IP accounting.")
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) });
  const files = readdirSync(commandsDir).filter((f) => /\.ts$/.test(f) && !/\.(test|d)\.ts$/.test(f)).sort();
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(commandsDir, f)).href)) as Partial<CommandModule>;
    if (typeof mod.register !== "function") throw new Error(`src/cli/commands/${f} exports no register(program)`);
    mod.register(program);
  }
  return program;
}

try {
  await (await buildProgram()).parseAsync(process.argv);
} catch (err) {
  // Expected failures (bad config, migration refused) print one clear line, not a stack.
  const e = err as Error;
  process.stderr.write(`palisade: ${e.name === "Error" ? "" : `${e.name}: `}${e.message}\n`);
  process.exitCode = 1;
}
