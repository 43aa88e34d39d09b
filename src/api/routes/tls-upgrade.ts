// POST /v1/hosts/:id/tls-upgrade: a single-use secret with which a host enrolled over
// plaintext moves to mutual TLS in place (the agent's Upgrade on the legacy plaintext port;
// docs/security.md, "Upgrading a host enrolled over plaintext"). Operators and admins; the
// secret is shown only in this answer: the database holds its sha256, the audit log its id.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { recordAudit } from "../audit.ts";
import { hashSecret, newSecret } from "../auth.ts";
import { hostWhere } from "../db/hosts.ts";
import { conflict, errorResponses, notFound } from "../errors.ts";
import { iso, Timestamp } from "../schemas.ts";
import { caFingerprint } from "../tls/ca.ts";
import { joinEnrollToken } from "../../protocol/pin.ts";

/** Short: the secret crosses to the host by the operator's hand and is spent at once. */
export const TLS_UPGRADE_TTL_SECONDS = 15 * 60;

const HostParams = z.strictObject({ id: z.string().min(1).max(253).describe("host id or name") });
const CreatedUpgrade = z.object({
  id: z.uuid(),
  hostId: z.uuid(),
  hostName: z.string(),
  secret: z
    .string()
    .describe(
      "for the agent's PALISADE_TLS_UPGRADE_SECRET (or PALISADE_TLS_UPGRADE_SECRET_FILE); shown only here, usable once. `<secret>.<SHA-256 of the CA certificate>`: the agent checks the certificate it gets against that pin",
    ),
  caFingerprint: z.string().describe("SHA-256 (hex) of the agents' CA certificate, also carried in `secret`"),
  expiresAt: Timestamp,
});

export const tlsUpgradeRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    "/:id/tls-upgrade",
    {
      config: { access: "operate" },
      schema: {
        tags: ["hosts"],
        operationId: "createTlsUpgradeSecret",
        summary: "Create a single-use secret that moves a plaintext-enrolled host to mutual TLS",
        description: `The host keeps its id, rules and history. The secret lives ${TLS_UPGRADE_TTL_SECONDS / 60} minutes; creating another one for the host voids its unused ones. 409 when the agent channel runs without TLS, or the host is disabled or already on mutual TLS.`,
        params: HostParams,
        response: {
          201: CreatedUpgrade.describe("The secret (shown only now) and its expiry."),
          ...errorResponses(401, 403, 404, 409),
        },
      },
    },
    async (req, reply) => {
      // The CA is created before REST serves (server.ts); no row means plaintext mode or a test app.
      const pin = app.config.agentTls.mode === "mtls" ? await caFingerprint(app.db) : undefined;
      if (!pin)
        throw conflict(
          "the agent channel runs without TLS (PALISADE_GRPC_PLAINTEXT): there is no CA to upgrade a host to",
        );
      const secret = newSecret("palupgrade");
      const expiresAt = new Date(Date.now() + TLS_UPGRADE_TTL_SECONDS * 1000);
      const created = await app.db.$transaction(async (tx) => {
        const h = await tx.host.findUnique({
          where: hostWhere(req.params.id),
          select: { id: true, name: true, disabled: true, credentialHash: true },
        });
        if (!h) throw notFound(`host "${req.params.id}"`);
        if (h.disabled) throw conflict(`host "${h.name}" is disabled; enable it first`);
        if (!h.credentialHash)
          throw conflict(`host "${h.name}" is on mutual TLS already (it has connected with its certificate)`);
        await tx.tlsUpgradeSecret.deleteMany({ where: { hostId: h.id, usedAt: null } });
        const row = await tx.tlsUpgradeSecret.create({
          data: { hostId: h.id, secretHash: hashSecret(secret), createdBy: req.actor.name, expiresAt },
        });
        await recordAudit(tx, req.actor, "host.tls_upgrade_secret", `host:${h.name}`, {
          id: h.id,
          upgradeSecret: row.id,
          expiresAt: iso(expiresAt),
        });
        return { row, host: h };
      });
      return reply.status(201).send({
        id: created.row.id,
        hostId: created.host.id,
        hostName: created.host.name,
        secret: joinEnrollToken(secret, pin),
        caFingerprint: pin,
        expiresAt: iso(expiresAt),
      });
    },
  );
};
