// `palisade login --server URL --token-file FILE [--context NAME]`: check the token
// against the server, then store both as a context in the config file (contexts.ts) and
// make it the current one. The token is read from a file (or "-" for stdin) so it stays
// out of shell history and process listings; it is never printed.
import { readFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { configPath, readConfig, writeConfig } from "../contexts.ts";
import { usageError } from "../errors.ts";
import { out } from "../output.ts";
import { Rest } from "../rest.ts";

export function contextName(server: string): string {
  try {
    return new URL(server).host;
  } catch {
    return server;
  }
}

export function register(program: Command): void {
  program
    .command("login")
    .description("check a server URL and token, store them as a context of ~/.config/palisade/config.yaml and use it")
    .requiredOption("--server <url>", "API base URL, e.g. https://palisade.example:8080")
    .option("--token-file <file>", 'file holding the API token ("-" reads stdin; default: env PALISADE_TOKEN)')
    .option("--context <name>", "name of the context (default: the server's host:port)")
    .option(
      "--ca-file <file>",
      "PEM CA of the server's HTTPS certificate (a private CA), stored in the context as an absolute path (env PALISADE_CA_FILE)",
    )
    .action(async (o: { server: string; tokenFile?: string; context?: string; caFile?: string }) => {
      const raw =
        o.tokenFile === undefined
          ? process.env.PALISADE_TOKEN
          : o.tokenFile === "-"
            ? readFileSync(0, "utf8")
            : await readFile(o.tokenFile, "utf8");
      const token = raw?.trim();
      if (!token) throw usageError("no token: give --token-file FILE (or - for stdin), or set PALISADE_TOKEN");
      if (/\s/.test(token))
        throw usageError(`the token file ${o.tokenFile ?? ""} holds more than one word; it should hold only the token`);
      const server = o.server.replace(/\/+$/, "");
      // Any role may list rulesets: a wrong URL or token fails here, before anything is stored.
      const caFile = o.caFile ?? (process.env.PALISADE_CA_FILE || undefined);
      await new Rest({ server, token, caFile }, {}).get("/v1/rulesets", { limit: 1 });
      const name = o.context ?? contextName(server);
      const file = configPath();
      const c = await readConfig(file);
      const ctx = { name, server, token, ...(caFile !== undefined && { "ca-file": resolve(caFile) }) };
      c.contexts = [...c.contexts.filter((x) => x.name !== name), ctx].sort((a, b) => a.name.localeCompare(b.name));
      c["current-context"] = name;
      await writeConfig(c, file);
      out(`logged in to ${server}; context "${name}" is current (${file})\n`);
    });
}
