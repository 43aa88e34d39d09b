// The CLI's config file: named contexts (a server URL and its token), one of them current,
// like kubeconfig. ~/.config/palisade/config.yaml ($XDG_CONFIG_HOME, or PALISADE_CONFIG for
// another file), written with mode 0600 through a temporary file and a rename, so a token
// is never readable by others nor half-written. Tokens are never printed.
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parse, stringify } from "yaml";
import * as z from "zod";
import { CliError } from "./errors.ts";

const Context = z.object({
  name: z.string().min(1),
  server: z.string().min(1),
  token: z.string().min(1),
  /** PEM CA of the server's HTTPS certificate (a private CA), trusted instead of the system's. */
  "ca-file": z.string().min(1).optional(),
});
const ConfigFile = z.object({
  "current-context": z.string().optional(),
  contexts: z.array(Context).default([]),
});
export type Context = z.infer<typeof Context>;
export type ConfigFile = z.infer<typeof ConfigFile>;

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PALISADE_CONFIG) return env.PALISADE_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "palisade", "config.yaml");
}

export async function readConfig(file = configPath()): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { contexts: [] };
    throw e;
  }
  const parsed = ConfigFile.safeParse(parse(text) ?? {});
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => `${i.path.join(".") || "/"}: ${i.message}`).join("; ");
    throw new CliError(
      "invalid_config",
      `${file} is not a palisade config file (${where})`,
      1,
      [],
      "fix or remove the file, then run `palisade login` again",
    );
  }
  return parsed.data;
}

export async function writeConfig(c: ConfigFile, file = configPath()): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // A fresh name opened with O_EXCL: a file or symlink planted at a guessable name is
  // never written through, and the file is 0600 from its first byte (it holds tokens).
  const tmp = `${file}.${randomBytes(8).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, stringify(c), { mode: 0o600, flag: "wx" });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** The context a verb uses: --context, else the file's current-context; undefined when none is set. */
export async function selectContext(
  name: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Context | undefined> {
  const file = configPath(env);
  const c = await readConfig(file);
  const wanted = name ?? env.PALISADE_CONTEXT ?? c["current-context"];
  if (wanted === undefined) return undefined;
  const found = c.contexts.find((x) => x.name === wanted);
  if (!found) {
    throw new CliError(
      "not_found",
      `context "${wanted}" not found in ${file}`,
      undefined,
      [],
      `\`palisade config get-contexts\` lists them; \`palisade login --context ${wanted} ...\` creates it`,
    );
  }
  return found;
}
