// Runs the `palisade` command line once: builds the program for the verb being run
// (program.ts), runs it, and ends every failure the one way errors.ts describes (one
// `error: <code>: ...` line on stderr, details and a hint, a documented exit status).
// main.ts calls it at load; bench/startup-snapshot.ts calls it from a V8 start-up snapshot.
import type { CommanderError } from "commander";
import { describeError, EXIT } from "./errors.ts";
import { buildProgram } from "./program.ts";

export async function runCli(args: string[]): Promise<void> {
  try {
    await (await buildProgram(args)).parseAsync(args, { from: "user" });
  } catch (err) {
    const code = (err as Partial<CommanderError>).code;
    if (typeof code === "string" && code.startsWith("commander.")) {
      // commander has printed its message (as `error: usage: ...`, see program.ts) or the help
      // (asked for: exit 0; shown because a subcommand is missing: a usage error).
      const asked =
        ["commander.helpDisplayed", "commander.version"].includes(code) || (err as CommanderError).exitCode === 0;
      process.exitCode = asked ? 0 : EXIT.usage;
    } else {
      const { text, exit } = describeError(err);
      process.stderr.write(text);
      process.exitCode = exit;
    }
  }
}
