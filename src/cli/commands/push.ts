// `palisade push FILE|-f FILE --ruleset NAME [--message M] [--force]`: store the document as
// the ruleset's next version (creating the ruleset on first push). A document equal to
// the latest version creates nothing and says "unchanged" (--force creates it anyway).
// YAML and JSON policy documents are sent as they are (`-f -` reads stdin, YAML or JSON);
// `--format iptables` sends iptables/iptables-save text for the importer.
import { extname } from "node:path";
import type { Command } from "commander";
import { CliError, EXIT, usageError } from "../errors.ts";
import { data, out, withOutput, formatOf } from "../output.ts";
import { readInput } from "../policy-file.ts";
import { Rest, RestError, seg, withRestOptions, type RestOptions } from "../rest.ts";

interface PushOptions extends RestOptions {
  ruleset: string;
  message?: string;
  format?: "policy" | "iptables";
  file?: string;
  force?: boolean;
  output?: string;
  json?: boolean;
}

interface Created {
  version: number;
  checksum: string;
  warnings: { path: string; code: string; message: string }[];
  unchanged?: boolean;
}

export async function push(
  file: string,
  o: PushOptions,
  print: (line: string) => void = (l) => out(l + "\n"),
): Promise<Created> {
  const rest = new Rest(o);
  const text = await readInput(file);
  const name = seg(o.ruleset);
  const query = (extra: Record<string, string | undefined>) => {
    const q = new URLSearchParams(
      Object.entries({ ...extra, ifChanged: o.force ? undefined : "true" }).filter(
        (e): e is [string, string] => e[1] !== undefined,
      ),
    );
    return q.size ? `?${q}` : "";
  };
  const send = (): Promise<Created> => {
    if (o.format === "iptables")
      return rest.request<Created>("POST", `/v1/rulesets/${name}/versions${query({})}`, {
        format: "iptables",
        source: text,
        message: o.message,
      });
    // stdin and .yaml/.yml go as YAML (JSON is YAML too); other files must be JSON.
    if (file === "-" || [".yaml", ".yml"].includes(extname(file).toLowerCase())) {
      return rest.request<Created>("POST", `/v1/rulesets/${name}/versions${query({ message: o.message })}`, text, {
        contentType: "application/yaml",
      });
    }
    let policy: unknown;
    try {
      policy = JSON.parse(text);
    } catch (e) {
      throw new CliError(
        "malformed_request",
        `${file} is not JSON (${(e as Error).message})`,
        EXIT.invalid,
        [],
        "name YAML files .yaml/.yml, or pass --format iptables for iptables text",
      );
    }
    return rest.request<Created>("POST", `/v1/rulesets/${name}/versions${query({})}`, { policy, message: o.message });
  };
  let created: Created;
  try {
    created = await send();
  } catch (e) {
    if (!(e instanceof RestError && e.status === 404 && e.code === "not_found" && /ruleset/.test(e.message))) throw e;
    await rest.request("POST", "/v1/rulesets", { name: o.ruleset });
    print(`created ruleset ${o.ruleset}`);
    created = await send();
  }
  print(
    created.unchanged
      ? `${o.ruleset}@${created.version} unchanged (the document equals the latest version; --force creates a new one)`
      : `${o.ruleset}@${created.version} checksum ${created.checksum}`,
  );
  for (const w of created.warnings) print(`warning ${w.path}: ${w.message} (${w.code})`);
  return created;
}

export function register(program: Command): void {
  withOutput(
    withRestOptions(
      program
        .command("push")
        .description("store a policy file as the next version of a ruleset (created if missing)")
        .argument("[file]", "policy document (.json, .yaml/.yml; - for stdin) or iptables text with --format iptables")
        .option("-f, --file <file>", "the document (same as the argument; - reads YAML or JSON from stdin)")
        .requiredOption("--ruleset <name>", "ruleset name")
        .option("--message <text>", "what changed (kept with the version)")
        .option("--format <format>", "policy (default) or iptables", "policy")
        .option("--force", "create a new version even when the document equals the latest"),
    ),
  ).action(async (arg: string | undefined, o: PushOptions) => {
    const file = o.file ?? arg;
    if (file === undefined)
      throw usageError("give the document: palisade push FILE --ruleset NAME, or -f - to read stdin");
    if (o.file !== undefined && arg !== undefined)
      throw usageError("give the document once: as the argument or with -f, not both");
    const f = formatOf(o);
    const created = await push(file, o, f === "json" || f === "yaml" ? () => {} : undefined);
    if (f === "json" || f === "yaml") out(data({ ruleset: o.ruleset, ...created }, f));
  });
}
