// Enroll: trade a one-time enrollment token for a host row and the agent's own credential.
// The token is consumed by one conditional UPDATE inside the transaction that creates the
// host, so two agents racing with the same token cannot both win, and a failure later in
// the transaction (say the name is taken) leaves the token unused.
import { HostName } from "../../engine/index.ts";
import { recordAudit } from "../audit.ts";
import { hashSecret, newSecret } from "../auth.ts";
import { isUniqueViolation, type Prisma } from "../db/client.ts";
import type { AgentContext } from "./context.ts";
import { AgentRpcError } from "./errors.ts";
import { Capabilities } from "./messages.ts";
import { CaError, type AgentCa } from "../tls/ca.ts";
import { splitEnrollToken } from "../../protocol/pin.ts";

export interface EnrollInput {
  token: string;
  name: string;
  capabilities?: unknown;
  /** PEM PKCS#10 request for the agent's key (mutual TLS). */
  csr?: string;
}

export interface Enrolled {
  hostId: string;
  hostName: string;
  credential: string;
  /** Mutual TLS: the host's client certificate and the CA's. */
  certificate: string;
  caCertificate: string;
}

/** With mutual TLS the enrollment also issues the host's first client certificate. */
export interface EnrollTls {
  ca: AgentCa;
  clientCertTtlSeconds: number;
}

export async function enrollAgent(ctx: AgentContext, input: EnrollInput, tls?: EnrollTls): Promise<Enrolled> {
  // The token as shown to the admin may still carry the CA pin; only the secret is hashed.
  input = { ...input, token: splitEnrollToken(input.token ?? "").secret };
  if (tls && !input.csr)
    throw new AgentRpcError(
      "invalid_csr",
      "this API issues client certificates: the enrollment must carry a certificate request (csr); upgrade the agent",
    );
  if (!input.token || input.token.length > 512)
    throw new AgentRpcError("invalid_token", "enrollment token missing or not one this API issued");
  const name = HostName.safeParse(input.name);
  if (!name.success)
    throw new AgentRpcError(
      "invalid_name",
      `host name ${JSON.stringify(input.name.slice(0, 64))}: ${name.error.issues[0]?.message ?? "invalid"} (1-253 characters)`,
    );
  const caps = Capabilities.safeParse(input.capabilities ?? {});
  const capabilities = caps.success ? caps.data : {};
  const tokenHash = hashSecret(input.token);
  const credential = newSecret("pal");

  try {
    const host = await ctx.db.$transaction(async (tx) => {
      const used = await tx.$queryRaw<{ id: string; labels: Prisma.JsonValue }[]>`
        UPDATE enrollment_tokens SET used_at = now()
        WHERE token_hash = ${tokenHash} AND used_at IS NULL AND expires_at > now()
        RETURNING id, labels`;
      const token = used[0];
      if (!token) throw await whyRefused(tx, tokenHash);
      const host = await tx.host.create({
        data: { name: name.data, labels: token.labels ?? {}, capabilities, credentialHash: hashSecret(credential) },
      });
      await tx.enrollmentToken.update({ where: { id: token.id }, data: { hostId: host.id } });
      // Issued inside the transaction: a bad CSR leaves the token unused.
      const cert = tls ? await tls.ca.issueClient(input.csr!, host.id, tls.clientCertTtlSeconds) : undefined;
      if (cert)
        await tx.host.update({
          where: { id: host.id },
          data: { certSerial: cert.serial, certExpiresAt: cert.notAfter },
        });
      await recordAudit(tx, { name: `agent:${host.name}`, tokenId: null }, "host.enroll", `host:${host.name}`, {
        id: host.id,
        enrollmentToken: token.id,
        ...(cert ? { certSerial: cert.serial } : {}),
      });
      return { ...host, certificate: cert?.certPem ?? "" };
    });
    ctx.log.info({ hostId: host.id, host: host.name }, "agent enrolled");
    return {
      hostId: host.id,
      hostName: host.name,
      credential,
      certificate: host.certificate,
      caCertificate: tls?.ca.certPem ?? "",
    };
  } catch (err) {
    if (err instanceof CaError) throw new AgentRpcError("invalid_csr", err.message);
    if (isUniqueViolation(err)) {
      throw new AgentRpcError(
        "name_taken",
        `a host named "${name.data}" is already enrolled; if it is this machine re-enrolling, delete the old host first (DELETE /v1/hosts/${name.data}, which also revokes its credential), or pick another --name`,
      );
    }
    throw err;
  }
}

async function whyRefused(tx: Prisma.TransactionClient, tokenHash: string): Promise<AgentRpcError> {
  const t = await tx.enrollmentToken.findUnique({ where: { tokenHash }, select: { usedAt: true, expiresAt: true } });
  if (!t) return new AgentRpcError("invalid_token", "enrollment token not recognised");
  if (t.usedAt) return new AgentRpcError("token_used", "enrollment token was already used; create a new one");
  return new AgentRpcError(
    "token_expired",
    `enrollment token expired at ${t.expiresAt.toISOString()}; create a new one`,
  );
}
