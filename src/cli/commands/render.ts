// `palisade render FILE [--target nftables|iptables]`: print the kernel rule text a policy
// compiles to, exactly what an agent would load (before its own failsafe endpoint is added).
import "../zod-jitless.ts";
import type { Command } from "commander";
import { EXIT } from "../errors.ts";
import { renderIptables, renderNft, validatePolicy } from "../../engine/index.ts";
import { formatDiagnostic, readPolicyFile } from "../policy-file.ts";
import { writeStdout } from "../stdout.ts";

export function register(program: Command): void {
  program
    .command("render")
    .description("compile a policy document to nftables (default) or iptables-restore text")
    .argument("<file>", "policy document (.yaml/.yml or .json; - for stdin as JSON)")
    .option("--target <target>", "nftables or iptables", "nftables")
    .action(async (file: string, o: { target: string }) => {
      if (o.target !== "nftables" && o.target !== "iptables")
        throw new Error(`--target must be nftables or iptables, got "${o.target}"`);
      const parsed = await readPolicyFile(file);
      const checked = parsed.ok
        ? validatePolicy(parsed.value, { target: o.target })
        : { ok: false, errors: parsed.errors, warnings: [] };
      for (const d of checked.warnings) process.stderr.write(formatDiagnostic(d) + "\n");
      if (!checked.ok || !("policy" in checked) || !checked.policy) {
        for (const d of checked.errors) process.stderr.write(formatDiagnostic(d) + "\n");
        process.stderr.write(`${file}: not rendered (${checked.errors.length} errors)\n`);
        process.exitCode = EXIT.invalid;
        return;
      }
      if (o.target === "nftables") {
        const r = renderNft(checked.policy);
        if (!r.ok) return fail(file, r.errors.map(formatDiagnostic));
        writeStdout(r.text);
      } else {
        const r = renderIptables(checked.policy);
        if (!r.ok) return fail(file, r.errors.map(formatDiagnostic));
        if (r.ipsets) writeStdout(`# --- ipset restore -exist ---\n${r.ipsets}`);
        writeStdout(`# --- iptables-restore --noflush ---\n${r.text}`);
        if (r.text6) writeStdout(`# --- ip6tables-restore --noflush ---\n${r.text6}`);
      }
    });
}

function fail(file: string, lines: string[]): void {
  for (const l of lines) process.stderr.write(l + "\n");
  process.stderr.write(`${file}: not rendered\n`);
  process.exitCode = EXIT.invalid;
}
