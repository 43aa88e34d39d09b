// Deployments: put one ruleset version on a selection of hosts, batch by batch (the
// rollout itself runs in the deploy worker, see ../deploy/). 202 = accepted and queued.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { FastifyReply, FastifyRequest } from "fastify";
import { createDeployment, createRollback, requestFingerprint, type IdempotencyKey } from "../deploy/create.ts";
import { createRolloutQueue } from "../deploy/queue.ts";
import { Selector, Strategy } from "../deploy/strategy.ts";
import {
  countsFor,
  DeploymentDetail,
  DeploymentSummary,
  detailView,
  inSnapshot,
  summaryInclude,
  summaryView,
} from "../deploy/views.ts";
import { errorResponses, notFound } from "../errors.ts";
import { newestFirst, page, pageOf, PageQuery } from "../paging.ts";
import { redisReady } from "../redis.ts";
import { Name } from "../schemas.ts";

const CreateDeployment = z.strictObject({
  ruleset: Name,
  version: z.number().int().min(1),
  selector: Selector,
  strategy: Strategy.default(Strategy.parse({})),
});
const Accepted = z.object({ id: z.uuid(), targets: z.number().int().describe("hosts the deployment targets") });
const RollbackAccepted = Accepted.extend({
  skipped: z
    .array(z.string())
    .describe(
      "hosts left as they are: they ran no version before, or their kernel lacks a feature the version they would go back to needs (skippedReasons says which)",
    ),
  skippedReasons: z
    .array(
      z.object({
        host: z.string(),
        code: z
          .string()
          .describe(
            "no_previous_version, or FEATURE_unsupported (queue_unsupported, tproxy_unsupported, socket_unsupported)",
          ),
        reason: z.string(),
      }),
    )
    .optional()
    .describe(
      "why each skipped host was skipped (one entry per missing feature); absent in the replay of an answer stored before this field existed",
    ),
});
const IdParams = z.strictObject({ id: z.uuid() });
// Other headers pass through untouched (auth, content type).
const IdempotencyHeaders = z.looseObject({
  "idempotency-key": z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/, "1-255 visible ASCII characters")
    .optional()
    .describe(
      "a key the client picks per create (a UUID); a retry with the same key and body answers with the deployment of the first try instead of creating another; the same key with another body is 422 idempotency_key_reused. Kept per token, in PostgreSQL, as long as the deployment exists",
    ),
});

function idempotencyOf(req: FastifyRequest, request: unknown): IdempotencyKey | undefined {
  const key = (req.headers as { "idempotency-key"?: string })["idempotency-key"];
  return key === undefined ? undefined : { key, request: requestFingerprint(request) };
}

/** 202 either way; a replay says so (the first answer may have been lost on the way). */
function accepted<T extends { replayed?: true }>(reply: FastifyReply, r: T) {
  const { replayed, ...body } = r;
  if (replayed) reply.header("idempotent-replayed", "true");
  return reply.status(202).send(body);
}
const ListQuery = PageQuery.extend({
  status: z.enum(["pending", "running", "succeeded", "failed", "halted", "rolled_back"]).optional(),
});

export const deploymentRoutes: FastifyPluginAsyncZod = async (app) => {
  const queue = createRolloutQueue(app.redis, app.config.queue);
  app.addHook("onClose", async () => queue.close());
  queue.on("error", () => {}); // its connection reconnects by itself; /readyz reports Redis
  const deps = { db: app.db, queue, log: app.log, redisReady: () => redisReady(app.redis) };

  app.post(
    "/",
    {
      config: { access: "operate" },
      schema: {
        tags: ["deployments"],
        operationId: "createDeployment",
        summary: "Deploy a ruleset version",
        description:
          "Answers without waiting for Redis: while it is down the rollout is queued once it is back. Send an Idempotency-Key to retry safely.",
        headers: IdempotencyHeaders,
        body: CreateDeployment,
        response: {
          202: Accepted.describe(
            "The deployment was created (or, for a repeated Idempotency-Key, had been: header Idempotent-Replayed) and its rollout queued.",
          ),
          ...errorResponses(400, 401, 403, 404, 422),
        },
      },
    },
    async (req, reply) =>
      accepted(reply, await createDeployment(deps, req.actor, req.body, idempotencyOf(req, { create: req.body }))),
  );

  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["deployments"],
        operationId: "listDeployments",
        summary: "List deployments",
        description: "Newest first.",
        querystring: ListQuery,
        response: {
          200: pageOf(DeploymentSummary).describe("A page of deployments with per-status host counts, newest first."),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => {
      const order = newestFirst(req.query.cursor);
      const { rows, counts } = await inSnapshot(app.db, async (tx) => {
        const rows = await tx.deployment.findMany({
          where: { ...(req.query.status ? { status: req.query.status } : {}), ...order.where },
          orderBy: order.orderBy,
          take: req.query.limit + 1,
          include: summaryInclude,
        });
        const counts = await countsFor(
          tx,
          rows.map((r) => r.id),
        );
        return { rows, counts };
      });
      return page(rows, req.query.limit, (d) => summaryView(d, counts.get(d.id)!), order.keyOf);
    },
  );

  app.get(
    "/:id",
    {
      config: { access: "read" },
      schema: {
        tags: ["deployments"],
        operationId: "getDeployment",
        summary: "Get a deployment with its hosts",
        params: IdParams,
        response: {
          200: DeploymentDetail.describe("The deployment with every target host, its batch, status and error."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const view = await inSnapshot(app.db, async (tx) => {
        const d = await tx.deployment.findUnique({ where: { id: req.params.id }, include: summaryInclude });
        return d && detailView(tx, d);
      });
      if (!view) throw notFound(`deployment ${req.params.id}`);
      return view;
    },
  );

  app.post(
    "/:id/rollback",
    {
      config: { access: "operate" },
      schema: {
        tags: ["deployments"],
        operationId: "rollbackDeployment",
        summary: "Roll a deployment back",
        description: "A new deployment that puts each target's previous version back.",
        params: IdParams,
        headers: IdempotencyHeaders,
        response: {
          202: RollbackAccepted.describe(
            "A rollback deployment was created and queued (or, for a repeated Idempotency-Key, had been).",
          ),
          ...errorResponses(400, 401, 403, 404, 409, 422),
        },
      },
    },
    async (req, reply) =>
      accepted(
        reply,
        await createRollback(deps, req.actor, req.params.id, idempotencyOf(req, { rollback: req.params.id })),
      ),
  );
};
