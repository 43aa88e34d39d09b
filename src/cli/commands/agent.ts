// `palisade agent --server HOST:PORT --enroll-token T --state-dir D [--name N] ...`:
// the agent daemon. Its flags are the agent's own (src/agent/config.ts), passed through
// to src/agent/cli.ts, which also answers `palisade agent --help`.
import type { Command } from "commander";

export function register(program: Command): void {
  program
    .command("agent")
    .description(
      "run the host agent (flags: --server --enroll-token --state-dir --name --netns --telemetry-interval --drift-interval ...; env PALISADE_*)",
    )
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .argument("[flags...]")
    .action(async (flags: string[]) => {
      const { agentCli } = await import("../../agent/cli.ts");
      await agentCli(flags);
    });
}
