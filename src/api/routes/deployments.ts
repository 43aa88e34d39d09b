// Deployments: put one ruleset version on a selection of hosts, batch by batch (the
// rollout itself runs in the deploy worker, see ../deploy/). 202 = accepted and queued.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { createDeployment, createRollback } from "../deploy/create.ts";
import { createRolloutQueue, queueSettings } from "../deploy/queue.ts";
import { Selector, Strategy } from "../deploy/strategy.ts";
import { countsFor, DeploymentDetail, DeploymentSummary, detailView, summaryInclude, summaryView } from "../deploy/views.ts";
import { errorResponses, notFound } from "../errors.ts";
import { decodeCursor, page, pageOf, PageQuery } from "../paging.ts";
import { iso, Name } from "../schemas.ts";

const CreateDeployment = z.strictObject({
  ruleset: Name,
  version: z.number().int().min(1),
  selector: Selector,
  strategy: Strategy.default(Strategy.parse({})),
});
const Accepted = z.object({ id: z.uuid(), targets: z.number().int().describe("hosts the deployment targets") });
const RollbackAccepted = Accepted.extend({ skipped: z.array(z.string()).describe("hosts that ran no version before; left as they are") });
const IdParams = z.strictObject({ id: z.uuid() });
const ListQuery = PageQuery.extend({ status: z.enum(["pending", "running", "succeeded", "failed", "halted", "rolled_back"]).optional() });

export const deploymentRoutes: FastifyPluginAsyncZod = async (app) => {
  const queue = createRolloutQueue(app.redis, queueSettings());
  app.addHook("onClose", async () => queue.close());
  const deps = { db: app.db, queue, log: app.log };

  app.post(
    "/",
    {
      config: { access: "operate" },
      schema: { tags: ["deployments"], operationId: "createDeployment", summary: "Deploy a ruleset version", body: CreateDeployment, response: { 202: Accepted.describe("The deployment was created and its rollout queued."), ...errorResponses(400, 401, 403, 404) } },
    },
    async (req, reply) => reply.status(202).send(await createDeployment(deps, req.actor, req.body)),
  );

  app.get(
    "/",
    {
      config: { access: "read" },
      schema: { tags: ["deployments"], operationId: "listDeployments", summary: "List deployments", description: "Newest first.", querystring: ListQuery, response: { 200: pageOf(DeploymentSummary).describe("A page of deployments with per-status host counts, newest first."), ...errorResponses(400, 401) } },
    },
    async (req) => {
      const before = decodeCursor(req.query.cursor, z.tuple([z.iso.datetime(), z.uuid()]));
      const rows = await app.db.deployment.findMany({
        where: {
          ...(req.query.status ? { status: req.query.status } : {}),
          ...(before ? { OR: [{ createdAt: { lt: new Date(before[0]) } }, { createdAt: new Date(before[0]), id: { lt: before[1] } }] } : {}),
        },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: req.query.limit + 1,
        include: summaryInclude,
      });
      const counts = await countsFor(app.db, rows.map((r) => r.id));
      return page(rows, req.query.limit, (d) => summaryView(d, counts.get(d.id)!), (d) => [iso(d.createdAt), d.id]);
    },
  );

  app.get(
    "/:id",
    { config: { access: "read" }, schema: { tags: ["deployments"], operationId: "getDeployment", summary: "Get a deployment with its hosts", params: IdParams, response: { 200: DeploymentDetail.describe("The deployment with every target host, its batch, status and error."), ...errorResponses(400, 401, 404) } } },
    async (req) => {
      const d = await app.db.deployment.findUnique({ where: { id: req.params.id }, include: summaryInclude });
      if (!d) throw notFound(`deployment ${req.params.id}`);
      return detailView(app.db, d);
    },
  );

  app.post(
    "/:id/rollback",
    {
      config: { access: "operate" },
      schema: {
        tags: ["deployments"], operationId: "rollbackDeployment", summary: "Roll a deployment back",
        description: "A new deployment that puts each target's previous version back.",
        params: IdParams,
        response: { 202: RollbackAccepted.describe("A rollback deployment was created and queued."), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => reply.status(202).send(await createRollback(deps, req.actor, req.params.id)),
  );
};
