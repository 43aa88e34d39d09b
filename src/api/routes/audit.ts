// The audit log: who changed what, when. Newest first.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Prisma } from "../db/client.ts";
import { errorResponses } from "../errors.ts";
import { decodeCursor, page, pageOf, PageQuery } from "../paging.ts";
import { iso, Timestamp } from "../schemas.ts";

const Entry = z.object({
  id: z.string().describe("increasing; a string because it is a 64-bit integer"),
  actor: z.string(),
  actorTokenId: z.uuid().nullable(),
  action: z.string(),
  target: z.string(),
  details: z.record(z.string(), z.unknown()),
  at: Timestamp,
});
const AuditQuery = PageQuery.extend({
  actor: z.string().optional(),
  action: z.string().optional().describe("exact action, e.g. ruleset.version.create"),
  target: z.string().optional().describe("target prefix, e.g. ruleset:web"),
  from: z.iso.datetime().optional(),
  to: z.iso.datetime().optional(),
});

export const auditRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["audit"],
        operationId: "listAudit",
        summary: "List audit entries",
        querystring: AuditQuery,
        response: {
          200: pageOf(Entry).describe("A page of audit entries, newest first."),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const before = decodeCursor(q.cursor, z.tuple([z.string().regex(/^\d+$/)]));
      const where: Prisma.AuditLogWhereInput = {
        ...(q.actor !== undefined && { actor: q.actor }),
        ...(q.action !== undefined && { action: q.action }),
        ...(q.target !== undefined && { target: { startsWith: q.target } }),
        ...((q.from || q.to) && {
          at: { ...(q.from && { gte: new Date(q.from) }), ...(q.to && { lt: new Date(q.to) }) },
        }),
        ...(before && { id: { lt: BigInt(before[0]) } }),
      };
      const rows = await app.db.auditLog.findMany({ where, orderBy: { id: "desc" }, take: q.limit + 1 });
      return page(
        rows,
        q.limit,
        (e) => ({ ...e, id: String(e.id), details: e.details as Record<string, unknown>, at: iso(e.at) }),
        (e) => [String(e.id)],
      );
    },
  );
};
