// One-time tokens an agent presents to enroll (the gRPC side consumes them). Admin only.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { recordAudit } from "../audit.ts";
import { hashSecret, newSecret } from "../auth.ts";
import { caFingerprint } from "../tls/ca.ts";
import { joinEnrollToken } from "../../protocol/pin.ts";
import { conflict, errorResponses, notFound } from "../errors.ts";
import { newestFirst, page, pageOf, PageQuery } from "../paging.ts";
import { iso, isoOrNull, Labels, Timestamp } from "../schemas.ts";
import type { EnrollmentToken as Row } from "../../generated/prisma/client.ts";

const DAY = 86_400;
const CreateEnrollment = z.strictObject({
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(30 * DAY)
    .default(DAY)
    .describe("how long the token can be used; default one day"),
  labels: Labels.default({}).describe("labels the enrolled host starts with"),
});
const Enrollment = z.object({
  id: z.uuid(),
  labels: Labels,
  createdBy: z.string(),
  expiresAt: Timestamp,
  usedAt: Timestamp.nullable(),
  hostId: z.uuid().nullable(),
  createdAt: Timestamp,
});
const CreatedEnrollment = Enrollment.extend({
  token: z
    .string()
    .describe(
      "for the agent's PALISADE_ENROLL_TOKEN (or --enroll-token-file); shown only here. With mutual TLS it ends in `.<SHA-256 of the CA certificate>`, which the agent checks the server against before sending anything",
    ),
  caFingerprint: z
    .string()
    .nullable()
    .describe(
      "SHA-256 (hex) of the agents' CA certificate, also carried in `token`; null when the agent channel runs without TLS",
    ),
});

const view = (t: Row): z.infer<typeof Enrollment> => ({
  id: t.id,
  labels: t.labels as Labels,
  createdBy: t.createdBy,
  expiresAt: iso(t.expiresAt),
  usedAt: isoOrNull(t.usedAt),
  hostId: t.hostId,
  createdAt: iso(t.createdAt),
});

export const enrollmentTokenRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    "/",
    {
      config: { access: "admin" },
      schema: {
        tags: ["hosts"],
        operationId: "createEnrollmentToken",
        summary: "Create an enrollment token",
        body: CreateEnrollment,
        response: {
          201: CreatedEnrollment.describe("The one-time token (shown only now) and its expiry."),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (req, reply) => {
      const secret = newSecret("palenroll");
      const expiresAt = new Date(Date.now() + req.body.ttlSeconds * 1000);
      const t = await app.db.$transaction(async (tx) => {
        const t = await tx.enrollmentToken.create({
          data: { tokenHash: hashSecret(secret), labels: req.body.labels, expiresAt, createdBy: req.actor.name },
        });
        await recordAudit(tx, req.actor, "enrollment_token.create", `enrollment_token:${t.id}`, {
          expiresAt: iso(expiresAt),
          labels: req.body.labels,
        });
        return t;
      });
      // The CA is created before REST serves (server.ts); no row means plaintext mode or a test app.
      const pin = app.config.agentTls.mode === "mtls" ? await caFingerprint(app.db) : undefined;
      return reply.status(201).send({ ...view(t), token: joinEnrollToken(secret, pin), caFingerprint: pin ?? null });
    },
  );

  app.get(
    "/",
    {
      config: { access: "admin" },
      schema: {
        tags: ["hosts"],
        operationId: "listEnrollmentTokens",
        summary: "List enrollment tokens",
        description: "Newest first.",
        querystring: PageQuery,
        response: {
          200: pageOf(Enrollment).describe("A page of enrollment tokens (never their secrets), newest first."),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (req) => {
      const order = newestFirst(req.query.cursor);
      const rows = await app.db.enrollmentToken.findMany({
        where: order.where,
        orderBy: order.orderBy,
        take: req.query.limit + 1,
      });
      return page(rows, req.query.limit, view, order.keyOf);
    },
  );

  app.delete(
    "/:id",
    {
      config: { access: "admin" },
      schema: {
        tags: ["hosts"],
        operationId: "revokeEnrollmentToken",
        summary: "Revoke an unused enrollment token",
        description:
          "The token can no longer enroll. A used token is 409: revoke the host it enrolled instead (DELETE /v1/hosts/:id).",
        params: z.strictObject({ id: z.uuid() }),
        response: { 204: z.undefined().describe("Revoked."), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      await app.db.$transaction(async (tx) => {
        // Conditional delete: a token consumed by a concurrent enrollment is not revoked.
        const n = await tx.enrollmentToken.deleteMany({ where: { id: req.params.id, usedAt: null } });
        if (n.count === 0) {
          const t = await tx.enrollmentToken.findUnique({ where: { id: req.params.id }, select: { hostId: true } });
          if (!t) throw notFound(`enrollment token "${req.params.id}"`);
          throw conflict(
            `enrollment token "${req.params.id}" was already used${t.hostId ? ` by host ${t.hostId}` : ""}; delete that host to revoke its access`,
          );
        }
        await recordAudit(tx, req.actor, "enrollment_token.revoke", `enrollment_token:${req.params.id}`, {});
      });
      return reply.status(204).send();
    },
  );
};
