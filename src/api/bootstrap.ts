// The first admin token: from PALISADE_ADMIN_TOKEN, or created and printed once when no
// admin token exists. Runs under a transaction-scoped advisory lock so replicas starting
// together create at most one.
import type { FastifyBaseLogger } from "fastify";
import { recordAudit, SYSTEM_ACTOR } from "./audit.ts";
import { hashSecret, newSecret } from "./auth.ts";
import type { Db } from "./db/client.ts";

export type BootstrapResult = { kind: "env"; created: boolean } | { kind: "generated"; token: string } | { kind: "existing" };

export async function ensureAdminToken(db: Db, envToken: string | undefined, log: FastifyBaseLogger): Promise<BootstrapResult> {
  const result = await db.$transaction(async (tx): Promise<BootstrapResult> => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('palisade.bootstrap-admin'))`;
    if (envToken) {
      const tokenHash = hashSecret(envToken);
      const existing = await tx.apiToken.findUnique({ where: { tokenHash } });
      if (existing) {
        // A revoked token stays revoked: someone meant it. Say why the env token fails.
        if (existing.revokedAt) log.warn({ token: existing.name }, "PALISADE_ADMIN_TOKEN names a revoked token; it will not authenticate");
        return { kind: "env", created: false };
      }
      const name = `env-admin-${tokenHash.slice(0, 8)}`;
      await tx.apiToken.create({ data: { name, tokenHash, role: "admin", createdBy: "system" } });
      await recordAudit(tx, SYSTEM_ACTOR, "token.create", `token:${name}`, { role: "admin", source: "PALISADE_ADMIN_TOKEN" });
      return { kind: "env", created: true };
    }
    if (await tx.apiToken.count({ where: { role: "admin", revokedAt: null } })) return { kind: "existing" };
    const token = newSecret("pal");
    await tx.apiToken.create({ data: { name: "initial-admin", tokenHash: hashSecret(token), role: "admin", createdBy: "system" } });
    await recordAudit(tx, SYSTEM_ACTOR, "token.create", "token:initial-admin", { role: "admin", source: "generated at first start" });
    return { kind: "generated", token };
  });
  if (result.kind === "generated") {
    log.warn(
      { adminToken: result.token, tokenName: "initial-admin" },
      "created the initial admin API token; it is shown only this once: store it now (or set PALISADE_ADMIN_TOKEN)",
    );
  } else if (result.kind === "env" && result.created) {
    log.info("registered PALISADE_ADMIN_TOKEN as an admin API token");
  }
  return result;
}
