// `palisade import FILE [--format iptables|iptables-save|ipmasqadm] [--ipset FILE] [--execute [--arg W]] [--ruleset NAME]`:
// turn an existing firewall script into a policy document and print what every input line
// became. --execute runs the script in a sandbox (../execute.ts) and imports the commands it
// made, for scripts with loops, conditions and substitutions. With --ruleset the result is pushed as the ruleset's next version (the server
// imports it again itself, so what is stored is exactly what the server validated).
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { stringify } from "yaml";
import {
  familyFromFileName,
  formatImportReport,
  importPolicy,
  importRecorded,
  type ImportFormat,
  type ImportResult,
} from "../../engine/index.ts";
import { executeScript, SandboxError } from "../execute.ts";
import { formatDiagnostic, readInput } from "../policy-file.ts";
import { CliError, EXIT, usageError } from "../errors.ts";
import { Rest, RestError, withRestOptions, type RestOptions } from "../rest.ts";

const FORMATS: readonly ImportFormat[] = ["iptables", "iptables-save", "ipmasqadm"];

/** iptables-save output starts with `*table` lines; everything else is a script. */
function guessFormat(text: string): ImportFormat {
  return /^\*(filter|nat|mangle|raw|rawpost|security)\s*$/m.test(text) ? "iptables-save" : "iptables";
}

function collectArg(word: string, acc: string[]): string[] {
  return [...acc, word];
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
      .option(
        "--family <family>",
        "with iptables-save text: ipv6 when ip6tables-save wrote it, ipv4 when iptables-save did (default: the header, the rules, then the file name tell)",
      )
      .option("--output <file>", "write the policy document (YAML) here instead of stdout")
      .option(
        "--var <name=value>",
        "define a shell variable the script uses (repeatable), e.g. --var FRIEND=209.81.8.0/24",
        collectVar,
        {},
      )
      .option(
        "--execute",
        "run the script in a sandbox (namespaces, read-only host, no network) and import the iptables/ipset commands it makes",
      )
      .option(
        "--arg <word>",
        "with --execute: a positional parameter for the script ($1, ...; repeatable), e.g. --arg start",
        collectArg,
        [],
      )
      .option("--timeout <seconds>", "with --execute: kill the script after this long", "30")
      .option(
        "--ipset <file>",
        "`ipset save` output holding the sets the rules match (their type and members); without it a rule that matches one is refused, as iptables-restore refuses it",
      )
      .option("--ruleset <name>", "push the result as the next version of this ruleset")
      .option("--message <text>", "with --ruleset: what changed"),
  ).action(async (file: string, o: ImportCliOptions) => {
    const source = await readInput(file);
    const format = (o.format ?? guessFormat(source)) as ImportFormat;
    if (!FORMATS.includes(format)) throw usageError(`--format must be one of ${FORMATS.join(", ")}, got "${o.format}"`);
    if (o.execute && format !== "iptables") throw usageError("--execute runs shell scripts: --format must be iptables");
    if (!o.execute && o.arg.length > 0) throw usageError("--arg only applies with --execute");
    if (o.execute && o.ipset)
      throw usageError("--ipset does not apply with --execute: the script's own ipset commands are recorded");
    const ipsets = o.ipset === undefined ? undefined : await readInput(o.ipset);
    const family = saveFamily(format, o.family);
    const familyHint = format === "iptables-save" ? familyFromFileName(file) : undefined;
    const result = o.execute
      ? await executeAndImport(file, source, o)
      : importPolicy(format, source, {
          variables: o.var,
          ...(family && { family }),
          ...(familyHint && { familyHint }),
          ...(ipsets !== undefined && { ipsets }),
        });
    // The report goes to stderr so stdout can be redirected to a policy file.
    process.stderr.write(formatImportReport(result.report) + "\n");
    for (const d of [...result.errors, ...result.warnings]) process.stderr.write(formatDiagnostic(d) + "\n");
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
      // An executed script is pushed as the document it produced: the server never runs scripts.
      const body = o.execute
        ? { policy: result.policy, message: o.message }
        : // The family this import settled on (--family, header, rules or the file's name): the
          // server does not see the file's name, and must store the policy shown here.
          {
            format,
            source,
            ...(result.family && { family: result.family }),
            ...(ipsets !== undefined && { ipsets }),
            message: o.message,
          };
      const send = () =>
        rest.request<{ version: number }>("POST", `/v1/rulesets/${encodeURIComponent(o.ruleset!)}/versions`, body);
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

/** --family, checked: only iptables-save text has a family to tell. */
function saveFamily(format: ImportFormat, given?: string): "ipv4" | "ipv6" | undefined {
  if (given === undefined) return undefined;
  if (given !== "ipv4" && given !== "ipv6") throw usageError(`--family must be ipv4 or ipv6, got "${given}"`);
  if (format !== "iptables-save") throw usageError("--family applies only to iptables-save text");
  return given;
}

type ImportCliOptions = RestOptions & {
  family?: string;
  format?: string;
  output?: string;
  ruleset?: string;
  message?: string;
  var: Record<string, string>;
  execute?: boolean;
  arg: string[];
  timeout: string;
  ipset?: string;
};

async function executeAndImport(file: string, source: string, o: ImportCliOptions): Promise<ImportResult> {
  if (Object.keys(o.var).length > 0)
    throw usageError(
      "--var does not apply with --execute: the script assigns its own variables (pass $1... with --arg)",
    );
  const seconds = Number(o.timeout);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600)
    throw usageError(`--timeout takes 1 to 3600 seconds, got "${o.timeout}"`);
  const run = await executeScript(source, { args: o.arg, timeoutMs: seconds * 1000 }).catch((e: unknown) => {
    if (e instanceof SandboxError && e.code === "execute_needs_root") {
      throw new CliError(
        e.code,
        e.message,
        EXIT.denied,
        [],
        "sudo palisade import --execute ... (the script itself runs as nobody, without capabilities)",
      );
    }
    throw e;
  });
  if (run.output)
    process.stderr.write(run.output.replace(/\n?$/, "\n") + (run.outputTruncated ? "(script output cut)\n" : ""));
  if (run.exitCode !== 0 && !run.timedOut)
    process.stderr.write(`${file}: the script exited with status ${run.exitCode}\n`);
  process.stderr.write(`${file}: ${run.commands.length} commands recorded\n`);
  const result = importRecorded(run.commands);
  // A script cut short set up part of its firewall: importing that would be a different policy.
  if (run.timedOut) {
    result.errors.push({
      path: "/source",
      code: "import_script_timeout",
      message: `the script ran longer than ${seconds} s and was killed`,
      severity: "error",
    });
  }
  return result;
}
