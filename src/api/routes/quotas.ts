// Quotas: the state each host's agent reported for its named quotas, and a
// reset that travels to the agent over its stream (telemetry/quota-reset.ts). A reset
// answers 202 with the request id at once; the agent's answer lands on the request row.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { errorResponses, notFound } from "../errors.ts";
import { decodeCursor, page, pageOf, PageQuery } from "../paging.ts";
import { iso, isoOrNull, Timestamp } from "../schemas.ts";
import { resolveHost } from "../telemetry/hosts.ts";
import { HostFilter } from "../telemetry/http.ts";
import { requestQuotaReset } from "../telemetry/quota-reset.ts";
import { Counter, counterJson } from "../telemetry/u64.ts";

const Quota = z.object({
  hostId: z.uuid(),
  host: z.string(),
  name: z.string(),
  mode: z.enum(["bytes", "packets"]),
  grow: z.boolean().describe("up-counting (quota2 --grow): no limit applies"),
  limit: Counter,
  used: Counter,
  remaining: Counter.nullable().describe("limit - used (never below 0); null for a growing counter"),
  sampledAt: Timestamp.nullable(),
  updatedAt: Timestamp,
});
const QuotasQuery = PageQuery.extend({ host: HostFilter.optional(), name: z.string().max(128).optional() });
const ResetParams = z.strictObject({ id: HostFilter, name: z.string().min(1).max(128) });
const ResetAccepted = z.object({
  requestId: z.uuid(),
  status: z.literal("pending"),
  delivered: z.boolean().describe("an agent stream received it now (else it is sent when the agent connects)"),
});

export const quotaRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    "/quotas",
    {
      config: { access: "read" },
      schema: {
        tags: ["quotas"],
        operationId: "listQuotas",
        summary: "List quotas",
        querystring: QuotasQuery,
        response: {
          200: pageOf(Quota).describe("A page of quotas with their current usage."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const host = q.host !== undefined ? await resolveHost(app.db, q.host) : undefined;
      const after = decodeCursor(q.cursor, z.tuple([z.string(), z.string()]));
      const rows = await app.db.quotaState.findMany({
        where: {
          ...(host && { hostId: host.id }),
          ...(q.name !== undefined && { name: q.name }),
          ...(after && {
            OR: [{ host: { name: { gt: after[0] } } }, { host: { name: after[0] }, name: { gt: after[1] } }],
          }),
        },
        include: { host: { select: { name: true } } },
        orderBy: [{ host: { name: "asc" } }, { name: "asc" }],
        take: q.limit + 1,
      });
      return page(
        rows,
        q.limit,
        (r) => ({
          hostId: r.hostId,
          host: r.host.name,
          name: r.name,
          mode: r.mode,
          grow: r.grow,
          limit: counterJson(r.limit),
          used: counterJson(r.used),
          remaining: r.grow ? null : counterJson(r.limit > r.used ? r.limit - r.used : 0n),
          sampledAt: isoOrNull(r.sampledAt),
          updatedAt: iso(r.updatedAt),
        }),
        (r) => [r.host.name, r.name],
      );
    },
  );

  app.post(
    "/hosts/:id/quotas/:name/reset",
    {
      config: { access: "operate" },
      schema: {
        tags: ["quotas"],
        operationId: "resetQuota",
        summary: "Reset a quota on a host",
        params: ResetParams,
        response: {
          202: ResetAccepted.describe("The reset was sent to the agent (or queued until it reconnects)."),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (req, reply) => {
      const host = await resolveHost(app.db, req.params.id);
      const known = await app.db.quotaState.findUnique({
        where: { hostId_name: { hostId: host.id, name: req.params.name } },
        select: { id: true },
      });
      if (!known) throw notFound(`quota "${req.params.name}" on host "${host.name}" (no telemetry reported it)`);
      const r = await requestQuotaReset(app, host.id, req.params.name, req.actor);
      if (r.publishError)
        req.log.warn({ requestId: r.requestId, err: r.publishError }, "quota reset recorded but not published");
      return reply.status(202).send({ requestId: r.requestId, status: "pending" as const, delivered: r.delivered > 0 });
    },
  );
};
