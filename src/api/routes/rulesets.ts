// Rulesets: named policies. Their versions are in versions.ts.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { recordAudit } from "../audit.ts";
import { conflictOnUnique } from "../db/client.ts";
import { errorResponses, notFound } from "../errors.ts";
import { byName, page, pageOf, PageQuery } from "../paging.ts";
import { iso, Name, Timestamp } from "../schemas.ts";
import type { Ruleset as RulesetRow } from "../../generated/prisma/client.ts";

export const Ruleset = z.object({
  name: Name,
  description: z.string(),
  latestVersion: z.number().int().nullable().describe("number of the newest version; null before the first"),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const CreateRuleset = z.strictObject({ name: Name, description: z.string().max(2000).default("") });
export const RulesetParams = z.strictObject({ name: Name });

export const rulesetView = (r: RulesetRow): z.infer<typeof Ruleset> => ({
  name: r.name,
  description: r.description,
  latestVersion: r.latestVersion === 0 ? null : r.latestVersion,
  createdAt: iso(r.createdAt),
  updatedAt: iso(r.updatedAt),
});

export const rulesetRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    "/",
    {
      config: { access: "operate" },
      schema: {
        tags: ["rulesets"],
        operationId: "createRuleset",
        summary: "Create a ruleset",
        body: CreateRuleset,
        response: {
          201: Ruleset.describe("The new ruleset, without versions yet."),
          ...errorResponses(400, 401, 403, 409),
        },
      },
    },
    async (req, reply) => {
      const created = await app.db
        .$transaction(async (tx) => {
          const r = await tx.ruleset.create({ data: req.body });
          await recordAudit(tx, req.actor, "ruleset.create", `ruleset:${r.name}`, { description: r.description });
          return r;
        })
        .catch(conflictOnUnique(`ruleset "${req.body.name}" already exists`));
      return reply.status(201).send(rulesetView(created));
    },
  );

  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["rulesets"],
        operationId: "listRulesets",
        summary: "List rulesets",
        querystring: PageQuery,
        response: { 200: pageOf(Ruleset).describe("A page of rulesets ordered by name."), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const order = byName(req.query.cursor);
      const rows = await app.db.ruleset.findMany({
        where: order.where,
        orderBy: order.orderBy,
        take: req.query.limit + 1,
      });
      return page(rows, req.query.limit, rulesetView, order.keyOf);
    },
  );

  app.get(
    "/:name",
    {
      config: { access: "read" },
      schema: {
        tags: ["rulesets"],
        operationId: "getRuleset",
        summary: "Get a ruleset",
        params: RulesetParams,
        response: {
          200: Ruleset.describe("The ruleset and the number of its newest version."),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => {
      const r = await app.db.ruleset.findUnique({ where: { name: req.params.name } });
      if (!r) throw notFound(`ruleset "${req.params.name}"`);
      return rulesetView(r);
    },
  );
};
