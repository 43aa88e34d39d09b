// Operator conditions: named on/off flags a policy's rules test (xt_condition), set for the
// hosts a selector picks and applied by the agents as one set-element change each, never
// a ruleset version. Every set is audited; a bad name or an unknown host is refused whole
// with nothing stored. See docs/conditions.md.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { conditions } from "../../engine/index.ts";
import {
  hostsWithoutConditions,
  listConditions,
  publishConditionChanges,
  setCondition,
  type ConditionRow,
} from "../conditions/index.ts";
import { errorResponses } from "../errors.ts";
import { deliveredCapable, SelectorBody, selectorOf, SelectorView, selectorViews } from "../host-selection.ts";
import { iso, Timestamp } from "../schemas.ts";
import { resolveHost } from "../telemetry/hosts.ts";
import { HostFilter } from "../telemetry/http.ts";

const Name = z.string().regex(conditions.CONDITION_NAME_RE, `condition names: ${conditions.CONDITION_NAME_RULE}`);

const Condition = z.object({
  id: z.uuid(),
  name: z.string(),
  on: z.boolean(),
  selector: SelectorView,
  setBy: z.string(),
  setAt: Timestamp,
});

const SetBody = z.strictObject({
  on: z.boolean(),
  selector: SelectorBody,
});

export const conditionRoutes: FastifyPluginAsyncZod = async (app) => {
  const hostNames = async (rows: ConditionRow[]) => {
    const selector = await selectorViews(app.db, rows);
    return (r: ConditionRow) => ({
      id: r.id,
      name: r.name,
      on: r.on,
      selector: selector(r),
      setBy: r.setBy,
      setAt: iso(r.setAt),
    });
  };

  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["conditions"],
        operationId: "listConditions",
        summary: "List condition values",
        querystring: z.strictObject({ name: Name.optional(), host: HostFilter.optional() }),
        response: {
          200: z
            .object({
              items: z.array(Condition),
              effective: z
                .record(z.string(), z.boolean())
                .optional()
                .describe("with host: each condition's value on that host (the newest row that picks it)"),
            })
            .describe("Rows by name, newest first; a host's value is the newest row whose selector picks it."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const host = req.query.host !== undefined ? await resolveHost(app.db, req.query.host) : undefined;
      const rows = await listConditions(app.db, {
        ...(req.query.name && { name: req.query.name }),
        ...(host && { hostId: host.id }),
      });
      const items = rows.map(await hostNames(rows));
      if (!host) return { items };
      const effective: Record<string, boolean> = {};
      for (const r of rows) if (!(r.name in effective)) effective[r.name] = r.on;
      return { items, effective };
    },
  );

  app.put(
    "/:name",
    {
      config: { access: "operate" },
      schema: {
        tags: ["conditions"],
        operationId: "setCondition",
        summary: "Turn a condition on or off for the selected hosts",
        params: z.strictObject({ name: Name }),
        body: SetBody,
        response: {
          200: z
            .object({
              item: Condition,
              hosts: z.number().int().describe("hosts the selector picks"),
              delivered: z
                .number()
                .int()
                .describe(
                  "of those, hosts with an agent stream up now that can act on it (the others converge when they connect)",
                ),
              unsupported: z
                .array(z.string())
                .describe(
                  "of those, hosts whose agent is older than conditions (no `conditions` capability): the flag does not reach them",
                ),
            })
            .describe("The stored row and where it goes."),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (req) => {
      const b = req.body;
      // Unknown hosts are refused here, before anything is stored.
      const selector = await selectorOf(app.db, b.selector);
      // Published under the name's lock, before the commit: two sets' notices arrive in commit order.
      const r = await setCondition(app.db, req.actor, { name: req.params.name, on: b.on, selector }, (changes) =>
        publishConditionChanges(app.redis, changes),
      );
      const d = r.published;
      if (d.publishErrors)
        req.log.warn(
          { hosts: d.publishErrors },
          "condition recorded but not published (Redis); agents converge when they reconnect",
        );
      const lacking = await hostsWithoutConditions(
        app.db,
        r.changes.map((c) => c.hostId),
      );
      return {
        item: (await hostNames([r.row]))(r.row),
        hosts: r.changes.length,
        // A stream that got the notice but whose agent lacks conditions drops it.
        delivered: deliveredCapable(d.deliveredTo, lacking),
        unsupported: lacking.map((h) => h.name),
      };
    },
  );
};
