// Upgrade: a host enrolled over plaintext trades its bearer credential and a single-use
// upgrade secret (POST /v1/hosts/:id/tls-upgrade) for its first client certificate, keeping
// its host id, its rules and its history (docs/security.md, "Upgrading a host enrolled over
// plaintext"). Served on the legacy plaintext port only. Every refusal happens before
// anything is written; the secret is consumed by one conditional UPDATE in the transaction
// that records the certificate, so a bad CSR or a lost race leaves it unused.
// The bearer credential keeps working until the host's first mutual TLS connect
// (identity.ts clears it then): an answer lost on the way leaves the agent on plaintext.
import { recordAudit } from "../audit.ts";
import { hashSecret } from "../auth.ts";
import { CaError, type AgentCa } from "../tls/ca.ts";
import { HOST_URI_PREFIX, x509 } from "../../protocol/pki.ts";
import { splitEnrollToken } from "../../protocol/pin.ts";
import type { AgentContext } from "./context.ts";
import { AgentRpcError } from "./errors.ts";
import type { AgentIdentity } from "./identity.ts";

export interface UpgradeTls {
  ca: AgentCa;
  clientCertTtlSeconds: number;
  /** The mutual TLS agent port, told to the agent so it can reconnect there. */
  agentPort: number;
}

export interface Upgraded {
  certificate: string;
  caCertificate: string;
  agentPort: number;
}

/**
 * The names a CSR carries (subject CN, SAN DNS names and URIs) may only be this host's:
 * the CA ignores them anyway, but an agent asking for another host's name is misconfigured
 * or hostile, and either way it gets nothing.
 */
export function checkCsrNames(csrPem: string, host: { id: string; name: string }): void {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (e) {
    throw new AgentRpcError(
      "invalid_csr",
      `the certificate request is not a PEM PKCS#10 request: ${(e as Error).message}`,
    );
  }
  const cns = csr.subjectName.getField("CN");
  const sanExt = csr.getExtension("2.5.29.17");
  const names = sanExt ? new x509.SubjectAlternativeNameExtension(sanExt.rawData).names.items : [];
  const foreign = [
    ...cns.filter((cn) => cn !== host.name && cn !== host.id).map((cn) => `CN=${cn}`),
    ...names
      .filter((n) =>
        n.type === "url" ? n.value !== `${HOST_URI_PREFIX}${host.id}` : n.type === "dns" ? n.value !== host.name : true,
      )
      .map((n) => `${n.type}:${n.value}`),
  ];
  if (foreign.length)
    throw new AgentRpcError(
      "csr_wrong_host",
      `the certificate request names ${foreign.slice(0, 3).join(", ")}; an upgrade of host "${host.name}" may name only ${host.name} or ${host.id}`,
    );
}

export async function upgradeAgent(
  ctx: AgentContext,
  identity: AgentIdentity,
  req: { secret: string; csr: string },
  tls: UpgradeTls,
): Promise<Upgraded> {
  // The secret as shown to the operator carries the CA pin; only the secret part is hashed.
  const secret = splitEnrollToken(req.secret ?? "").secret;
  if (!secret || secret.length > 512)
    throw new AgentRpcError("upgrade_secret_invalid", "upgrade secret missing or not one this API issued");
  const secretHash = hashSecret(secret);
  const row = await ctx.db.tlsUpgradeSecret.findUnique({ where: { secretHash } });
  if (!row) throw new AgentRpcError("upgrade_secret_invalid", "upgrade secret not recognised");
  // Another host's secret with this host's bearer (or the other way round): nothing is spent.
  if (row.hostId !== identity.hostId)
    throw new AgentRpcError(
      "wrong_host",
      `this upgrade secret was made for another host; the credential presented belongs to "${identity.hostName}"`,
    );
  if (row.usedAt)
    throw new AgentRpcError(
      "upgrade_secret_used",
      `upgrade secret already used at ${row.usedAt.toISOString()}; create a new one (POST /v1/hosts/${identity.hostId}/tls-upgrade)`,
    );
  if (row.expiresAt.getTime() <= Date.now())
    throw new AgentRpcError(
      "upgrade_secret_expired",
      `upgrade secret expired at ${row.expiresAt.toISOString()}; create a new one (POST /v1/hosts/${identity.hostId}/tls-upgrade)`,
    );
  if (!req.csr) throw new AgentRpcError("invalid_csr", "the upgrade must carry a certificate request (csr)");
  checkCsrNames(req.csr, { id: identity.hostId, name: identity.hostName });

  const cert = await ctx.db
    .$transaction(async (tx) => {
      const used = await tx.$queryRaw<{ id: string }[]>`
        UPDATE tls_upgrade_secrets SET used_at = now()
         WHERE id = ${row.id}::uuid AND used_at IS NULL AND expires_at > now()
        RETURNING id`;
      if (!used[0])
        throw new AgentRpcError("upgrade_secret_used", "upgrade secret used or expired meanwhile; create a new one");
      // Issued inside the transaction: a bad CSR leaves the secret unused.
      const cert = await tls.ca.issueClient(req.csr, identity.hostId, tls.clientCertTtlSeconds);
      // Conditional on the host still being enabled and on its bearer credential (a
      // revocation or an earlier upgrade that already reached mutual TLS wins).
      const n = await tx.host.updateMany({
        where: { id: identity.hostId, disabled: false, credentialHash: { not: null } },
        data: { certSerial: cert.serial, certExpiresAt: cert.notAfter, certSerialPrev: null },
      });
      if (n.count !== 1)
        throw new AgentRpcError(
          "host_disabled",
          `host "${identity.hostName}" was disabled, deleted or moved to mutual TLS meanwhile`,
        );
      await recordAudit(
        tx,
        { name: `agent:${identity.hostName}`, tokenId: null },
        "host.tls_upgrade",
        `host:${identity.hostName}`,
        { id: identity.hostId, upgradeSecret: row.id, certSerial: cert.serial },
      );
      return cert;
    })
    .catch((err: unknown) => {
      throw err instanceof CaError ? new AgentRpcError("invalid_csr", err.message) : err;
    });
  ctx.log.info(
    {
      hostId: identity.hostId,
      host: identity.hostName,
      certSerial: cert.serial,
      notAfter: cert.notAfter.toISOString(),
    },
    "agent upgraded to mutual TLS: certificate issued",
  );
  return { certificate: cert.certPem, caCertificate: tls.ca.certPem, agentPort: tls.agentPort };
}
