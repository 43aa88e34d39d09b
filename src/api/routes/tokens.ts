// API tokens (admin only). The secret is returned once, at creation; only its hash is kept.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { recordAudit } from "../audit.ts";
import { conflictOnUnique } from "../db/client.ts";
import { hashSecret, newSecret, ROLES } from "../auth.ts";
import { conflict, errorResponses, notFound } from "../errors.ts";
import { byName, page, pageOf, PageQuery } from "../paging.ts";
import { iso, isoOrNull, Name, Timestamp } from "../schemas.ts";
import { publishTokenRevoked } from "../telemetry/log-feed.ts";
import type { ApiToken as TokenRow } from "../../generated/prisma/client.ts";

const Token = z.object({
  id: z.uuid(),
  name: Name,
  role: z.enum(ROLES),
  createdBy: z.string(),
  createdAt: Timestamp,
  lastUsedAt: Timestamp.nullable(),
  revokedAt: Timestamp.nullable(),
});
const CreatedToken = Token.extend({ token: z.string().describe("the secret; shown only in this response") });
const CreateToken = z.strictObject({ name: Name, role: z.enum(ROLES) });
const TokenParams = z.strictObject({ id: z.uuid() });

const tokenView = (t: TokenRow): z.infer<typeof Token> => ({
  id: t.id,
  name: t.name,
  role: t.role,
  createdBy: t.createdBy,
  createdAt: iso(t.createdAt),
  lastUsedAt: isoOrNull(t.lastUsedAt),
  revokedAt: isoOrNull(t.revokedAt),
});

export const tokenRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    "/",
    {
      config: { access: "admin" },
      schema: {
        tags: ["tokens"],
        operationId: "createApiToken",
        summary: "Create an API token",
        body: CreateToken,
        response: {
          201: CreatedToken.describe("The new token; its secret is shown only in this response."),
          ...errorResponses(400, 401, 403, 409),
        },
      },
    },
    async (req, reply) => {
      const secret = newSecret("pal");
      const t = await app.db
        .$transaction(async (tx) => {
          const t = await tx.apiToken.create({
            data: { ...req.body, tokenHash: hashSecret(secret), createdBy: req.actor.name },
          });
          await recordAudit(tx, req.actor, "token.create", `token:${t.name}`, { id: t.id, role: t.role });
          return t;
        })
        .catch(conflictOnUnique(`a token named "${req.body.name}" already exists`));
      return reply.status(201).send({ ...tokenView(t), token: secret });
    },
  );

  app.get(
    "/",
    {
      config: { access: "admin" },
      schema: {
        tags: ["tokens"],
        operationId: "listApiTokens",
        summary: "List API tokens",
        querystring: PageQuery,
        response: {
          200: pageOf(Token).describe("A page of API tokens (never their secrets)."),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (req) => {
      const order = byName(req.query.cursor);
      const rows = await app.db.apiToken.findMany({
        where: order.where,
        orderBy: order.orderBy,
        take: req.query.limit + 1,
      });
      return page(rows, req.query.limit, tokenView, order.keyOf);
    },
  );

  app.delete(
    "/:id",
    {
      config: { access: "admin" },
      schema: {
        tags: ["tokens"],
        operationId: "revokeApiToken",
        summary: "Revoke an API token",
        description:
          "Revoke a token (idempotent). Refused for the last active admin token, which would lock everyone out.",
        params: TokenParams,
        response: {
          204: z
            .undefined()
            .describe(
              "Revoked (also when it already was): the token no longer authenticates, and its console sessions end.",
            ),
          ...errorResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (req, reply) => {
      const revoked = await app.db.$transaction(async (tx) => {
        // Serialise revocations so two admins can't revoke each other's last token at once.
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('palisade.api_tokens.revoke'))`;
        const t = await tx.apiToken.findUnique({ where: { id: req.params.id } });
        if (!t) throw notFound(`token ${req.params.id}`);
        if (t.revokedAt) return undefined;
        if (t.role === "admin") {
          const admins = await tx.apiToken.count({ where: { role: "admin", revokedAt: null } });
          if (admins <= 1)
            throw conflict("refusing to revoke the last active admin token; create another admin token first");
        }
        await tx.apiToken.update({ where: { id: t.id }, data: { revokedAt: new Date() } });
        await recordAudit(tx, req.actor, "token.revoke", `token:${t.name}`, { id: t.id });
        return t.id;
      });
      // Its live log streams end on every replica (each replica's sweep is the backstop).
      if (revoked)
        await publishTokenRevoked(app.redis, revoked).catch((err: Error) =>
          app.log.warn({ err: err.message }, "token revocation not published; its live streams end at the next sweep"),
        );
      return reply.status(204).send();
    },
  );
};
