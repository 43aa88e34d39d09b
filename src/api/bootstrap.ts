// The first admin token: from PALISADE_ADMIN_TOKEN, or created when no admin token exists
// and written to a 0600 file (never to the JSON log, which is shipped and kept). Runs
// under a transaction-scoped advisory lock so replicas starting together create at most one.
import { randomBytes } from "node:crypto";
import { chmod, open, rename, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { FastifyBaseLogger } from "fastify";
import { recordAudit, SYSTEM_ACTOR } from "./audit.ts";
import { hashSecret, newSecret } from "./auth.ts";
import type { Db } from "./db/client.ts";

export type BootstrapResult =
  | { kind: "env"; created: boolean }
  | { kind: "generated"; token: string; file: string }
  | { kind: "existing" };

export interface BootstrapOptions {
  /** Where a generated token is written (PALISADE_INITIAL_TOKEN_FILE). */
  tokenFile: string;
  /** Also shown here when it is an interactive terminal (stderr of `palisade server`). */
  terminal?: NodeJS.WriteStream;
}

export class BootstrapError extends Error {
  override name = "BootstrapError";
}

/**
 * Write `secret` to `file` with mode 0600: a new file opened exclusively beside it, then
 * renamed over it, so an existing file or a symlink planted at `file` is replaced rather
 * than written through, and no reader ever sees a partial or wider-permission file.
 */
export async function writeSecretFile(file: string, secret: string): Promise<void> {
  const tmp = join(dirname(file), `.${randomBytes(6).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(`${secret}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await chmod(tmp, 0o600); // the umask can only remove bits; this says what we mean
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

export async function ensureAdminToken(
  db: Db,
  envToken: string | undefined,
  log: FastifyBaseLogger,
  opts: BootstrapOptions,
): Promise<BootstrapResult> {
  const file = resolve(opts.tokenFile);
  const result = await db.$transaction(async (tx): Promise<BootstrapResult> => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('palisade.bootstrap-admin'))`;
    if (envToken) {
      const tokenHash = hashSecret(envToken);
      const existing = await tx.apiToken.findUnique({ where: { tokenHash } });
      if (existing) {
        // A revoked token stays revoked: someone meant it. Say why the env token fails.
        if (existing.revokedAt)
          log.warn({ token: existing.name }, "PALISADE_ADMIN_TOKEN names a revoked token; it will not authenticate");
        return { kind: "env", created: false };
      }
      const name = `env-admin-${tokenHash.slice(0, 8)}`;
      await tx.apiToken.create({ data: { name, tokenHash, role: "admin", createdBy: "system" } });
      await recordAudit(tx, SYSTEM_ACTOR, "token.create", `token:${name}`, {
        role: "admin",
        source: "PALISADE_ADMIN_TOKEN",
      });
      return { kind: "env", created: true };
    }
    if (await tx.apiToken.count({ where: { role: "admin", revokedAt: null } })) return { kind: "existing" };
    const token = newSecret("pal");
    await tx.apiToken.create({
      data: { name: "initial-admin", tokenHash: hashSecret(token), role: "admin", createdBy: "system" },
    });
    await recordAudit(tx, SYSTEM_ACTOR, "token.create", "token:initial-admin", {
      role: "admin",
      source: "generated at first start",
      file,
    });
    // Written before the commit: a token nobody can read must not exist (the write failing
    // rolls the row back, and the next start tries again).
    try {
      await writeSecretFile(file, token);
    } catch (err) {
      throw new BootstrapError(
        `cannot write the initial admin token to ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ` +
          "set PALISADE_INITIAL_TOKEN_FILE to a writable path, or PALISADE_ADMIN_TOKEN to register your own admin token",
      );
    }
    return { kind: "generated", token, file };
  });
  if (result.kind === "generated") {
    log.warn(
      { tokenName: "initial-admin", file: result.file },
      `created the initial admin API token and wrote it to ${result.file} (mode 0600): store it somewhere safe and delete the file`,
    );
    if (opts.terminal?.isTTY)
      opts.terminal.write(`\nInitial admin API token (also in ${result.file}):\n  ${result.token}\n\n`);
  } else if (result.kind === "env" && result.created) {
    log.info("registered PALISADE_ADMIN_TOKEN as an admin API token");
  }
  return result;
}
