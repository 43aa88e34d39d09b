// `palisade import FILE [--format iptables|iptables-save|ipmasqadm] [--ruleset NAME]`:
// turn an existing firewall script into a policy document and print what every input line
// became. With --ruleset the result is pushed as the ruleset's next version (the server
// imports it again itself, so what is stored is exactly what the server validated).
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { stringify } from "yaml";
import { formatImportReport, importPolicy, type ImportFormat } from "../../engine/index.ts";
import { formatDiagnostic, readInput } from "../policy-file.ts";
import { EXIT, usageError } from "../errors.ts";
import { Rest, RestError, withRestOptions, type RestOptions } from "../rest.ts";

const FORMATS: readonly ImportFormat[] = ["iptables", "iptables-save", "ipmasqadm"];

/** iptables-save output starts with `*table` lines; everything else is a script. */
function guessFormat(text: string): ImportFormat {
  return /^\*(filter|nat|mangle|raw|rawpost|security)\s*$/m.test(text) ? "iptables-save" : "iptables";
}

function collectVar(pair: string, acc: Record<string, string>): Record<string, string> {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(pair);
  if (!m) throw new Error(`--var takes NAME=VALUE, got "${pair}"`);
  return { ...acc, [m[1]!]: m[2]! };
}

export function register(program: Command): void {
  withRestOptions(
    program
      .command("import")
      .description("import an iptables script, iptables-save output or ipmasqadm lines as a policy document")
      .argument("<file>", "the script (- for stdin)")
      .option("--format <format>", "iptables, iptables-save or ipmasqadm (default: detected)")
      .option("--output <file>", "write the policy document (YAML) here instead of stdout")
      .option("--var <name=value>", "define a shell variable the script uses (repeatable), e.g. --var FRIEND=209.81.8.0/24", collectVar, {})
      .option("--ruleset <name>", "push the result as the next version of this ruleset")
      .option("--message <text>", "with --ruleset: what changed"),
  ).action(async (file: string, o: RestOptions & { format?: string; output?: string; ruleset?: string; message?: string; var: Record<string, string> }) => {
    const source = await readInput(file);
    const format = (o.format ?? guessFormat(source)) as ImportFormat;
    if (!FORMATS.includes(format)) throw usageError(`--format must be one of ${FORMATS.join(", ")}, got "${o.format}"`);
    const result = importPolicy(format, source, { variables: o.var });
    // The report goes to stderr so stdout can be redirected to a policy file.
    process.stderr.write(formatImportReport(result.report) + "\n");
    for (const d of result.errors) process.stderr.write(formatDiagnostic(d) + "\n");
    if (!result.policy || result.errors.length > 0) {
      process.stderr.write(`${file}: ${result.errors.length} lines could not be imported; nothing was written\n`);
      process.exitCode = EXIT.invalid;
      return;
    }
    const yaml = stringify(result.policy, { sortMapEntries: false });
    if (o.output) await writeFile(o.output, yaml);
    else if (!o.ruleset) process.stdout.write(yaml);
    if (o.ruleset) {
      const rest = new Rest(o);
      const send = () => rest.request<{ version: number }>("POST", `/v1/rulesets/${encodeURIComponent(o.ruleset!)}/versions`, { format, source, message: o.message });
      let created: { version: number };
      try {
        created = await send();
      } catch (e) {
        // As push does: a ruleset that does not exist yet is created.
        if (!(e instanceof RestError && e.status === 404 && /ruleset/.test(e.message))) throw e;
        await rest.request("POST", "/v1/rulesets", { name: o.ruleset });
        process.stdout.write(`created ruleset ${o.ruleset}\n`);
        created = await send();
      }
      process.stdout.write(`${o.ruleset}@${created.version}\n`);
    }
  });
}
