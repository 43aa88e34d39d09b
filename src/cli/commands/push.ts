// `palisade push FILE --ruleset NAME [--message M]`: store FILE as the ruleset's next
// version (creating the ruleset on first push). YAML and JSON policy documents are sent
// as they are; `--format iptables` sends iptables/iptables-save text for the importer.
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import type { Command } from "commander";
import { Rest, RestError, withRestOptions, type RestOptions } from "../rest.ts";

interface PushOptions extends RestOptions {
  ruleset: string;
  message?: string;
  format?: "policy" | "iptables";
}

interface Created {
  version: number;
  checksum: string;
  warnings: { path: string; code: string; message: string }[];
}

export async function push(file: string, o: PushOptions, out: (line: string) => void = (l) => process.stdout.write(l + "\n")): Promise<Created> {
  const rest = new Rest(o);
  const text = await readFile(file, "utf8");
  const name = encodeURIComponent(o.ruleset);
  const send = (): Promise<Created> => {
    if (o.format === "iptables") return rest.request<Created>("POST", `/v1/rulesets/${name}/versions`, { format: "iptables", source: text, message: o.message });
    if ([".yaml", ".yml"].includes(extname(file).toLowerCase())) {
      const q = o.message ? `?message=${encodeURIComponent(o.message)}` : "";
      return rest.request<Created>("POST", `/v1/rulesets/${name}/versions${q}`, text, { contentType: "application/yaml" });
    }
    let policy: unknown;
    try {
      policy = JSON.parse(text);
    } catch (e) {
      throw new RestError(0, "malformed_request", `${file} is not JSON (${(e as Error).message}); use .yaml/.yml for YAML or --format iptables`);
    }
    return rest.request<Created>("POST", `/v1/rulesets/${name}/versions`, { policy, message: o.message });
  };
  let created: Created;
  try {
    created = await send();
  } catch (e) {
    if (!(e instanceof RestError && e.status === 404)) throw e;
    await rest.request("POST", "/v1/rulesets", { name: o.ruleset });
    out(`created ruleset ${o.ruleset}`);
    created = await send();
  }
  out(`${o.ruleset}@${created.version} checksum ${created.checksum}`);
  for (const w of created.warnings) out(`warning ${w.path}: ${w.message} (${w.code})`);
  return created;
}

export function register(program: Command): void {
  withRestOptions(
    program
      .command("push")
      .description("store a policy file as the next version of a ruleset (created if missing)")
      .argument("<file>", "policy document (.json, .yaml/.yml) or iptables text with --format iptables")
      .requiredOption("--ruleset <name>", "ruleset name")
      .option("--message <text>", "what changed (kept with the version)")
      .option("--format <format>", "policy (default) or iptables", "policy"),
  ).action(async (file: string, o: PushOptions) => {
    await push(file, o);
  });
}
