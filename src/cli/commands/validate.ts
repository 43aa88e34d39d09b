// `palisade validate FILE [--target nftables|iptables] [--json]`: validate and lint a policy
// locally, without a server. Exit code 1 when there are errors (warnings alone pass).
import "../zod-jitless.ts";
import type { Command } from "commander";
import { EXIT } from "../errors.ts";
import { validatePolicy, type Target } from "../../engine/index.ts";
import { formatDiagnostic, readPolicyFile } from "../policy-file.ts";
import { writeStdout } from "../stdout.ts";

export function register(program: Command): void {
  program
    .command("validate")
    .description("validate and lint a policy document (YAML or JSON) without a server")
    .argument("<file>", "policy document (.yaml/.yml or .json; - for stdin as JSON)")
    .option("--target <target>", "also check that this target can express it: nftables or iptables")
    .option("--json", "print {ok, errors, warnings} as JSON")
    .action(async (file: string, o: { target?: string; json?: boolean }) => {
      if (o.target !== undefined && o.target !== "nftables" && o.target !== "iptables") {
        throw new Error(`--target must be nftables or iptables, got "${o.target}"`);
      }
      const parsed = await readPolicyFile(file);
      const result = parsed.ok
        ? validatePolicy(parsed.value, { target: o.target as Target | undefined })
        : { ok: false, errors: parsed.errors, warnings: [] };
      if (o.json) {
        writeStdout(
          JSON.stringify({ ok: result.ok, errors: result.errors, warnings: result.warnings }, null, 2) + "\n",
        );
      } else {
        for (const d of [...result.errors, ...result.warnings]) writeStdout(formatDiagnostic(d) + "\n");
        writeStdout(
          `${file}: ${result.ok ? "valid" : "invalid"} (${result.errors.length} errors, ${result.warnings.length} warnings)\n`,
        );
      }
      if (!result.ok) process.exitCode = EXIT.invalid;
    });
}
