// The `palisade` command: builds the program for the verb being run (program.ts) and
// runs it.
import { buildProgram } from "./program.ts";

try {
  const args = process.argv.slice(2);
  await (await buildProgram(args)).parseAsync(args, { from: "user" });
} catch (err) {
  // Expected failures (bad config, migration refused) print one clear line, not a stack.
  const e = err as Error;
  process.stderr.write(`palisade: ${e.name === "Error" ? "" : `${e.name}: `}${e.message}\n`);
  process.exitCode = 1;
}
