// Audit rows are written with the same transaction client as the change they describe,
// so a change and its record commit or roll back together.
import type { Prisma } from "./db/client.ts";

export interface Actor {
  /** Token name, or "system" for changes the server makes itself. */
  name: string;
  tokenId: string | null;
}

export const SYSTEM_ACTOR: Actor = { name: "system", tokenId: null };

export async function recordAudit(
  tx: Prisma.TransactionClient,
  actor: Actor,
  action: string,
  target: string,
  details: Prisma.InputJsonValue = {},
): Promise<void> {
  await tx.auditLog.create({ data: { actor: actor.name, actorTokenId: actor.tokenId, action, target, details } });
}
