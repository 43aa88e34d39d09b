// Bans: addresses and prefixes on named ban lists, on the hosts a selector picks, applied
// by the agents element by element (no ruleset version). Every change is audited; a bad
// request (malformed, 0.0.0.0/0, covering the API or an agent's management path) is
// refused whole. See docs/bans.md.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { bans } from "../../engine/index.ts";
import { addBans, hostsWithoutBans, listBans, publishBanChanges, removeBans, type BanRow } from "../bans/index.ts";
import { errorResponses } from "../errors.ts";
import { deliveredCapable, SelectorBody, selectorOf, SelectorView, selectorViews } from "../host-selection.ts";
import { decodeCursor, page, pageOf, PageQuery } from "../paging.ts";
import { iso, Timestamp } from "../schemas.ts";
import { resolveHost } from "../telemetry/hosts.ts";
import { HostFilter } from "../telemetry/http.ts";

const ListName = z.string().regex(bans.BAN_LIST_RE, `list names: ${bans.BAN_LIST_RULE}`);
export const MAX_BANS_PER_REQUEST = 100_000;

const Ban = z.object({
  id: z.uuid(),
  list: z.string(),
  address: z.string().describe("canonical address or CIDR"),
  reason: z.string(),
  selector: SelectorView,
  source: z.string().describe('"api", or "trap:<host>" for a shared port-scan trap hit'),
  createdBy: z.string(),
  createdAt: Timestamp,
  expiresAt: Timestamp,
  ttlSeconds: z.number().int().describe("seconds left when this answer was made"),
});

const AddBody = z.strictObject({
  list: ListName,
  addresses: z.array(z.string().min(1).max(64)).min(1).max(MAX_BANS_PER_REQUEST),
  ttlSeconds: z
    .number()
    .int()
    .min(1)
    .max(365 * 86400)
    .default(4 * 3600),
  reason: z.string().max(256).default(""),
  selector: SelectorBody,
});
const Changed = z.object({
  items: z.array(Ban),
  hosts: z.number().int().describe("hosts whose kernels change"),
  delivered: z
    .number()
    .int()
    .describe("of those, hosts with an agent stream up now that can act on it (the others converge when they connect)"),
  unsupported: z
    .number()
    .int()
    .describe("of those, hosts whose agent is older than bans (no `bans` capability): they get none until upgraded"),
});
const ListQuery = PageQuery.extend({ list: ListName.optional(), host: HostFilter.optional() });
const RemoveParams = z.strictObject({ list: ListName, address: z.string().min(1).max(64) });

export const banRoutes: FastifyPluginAsyncZod = async (app) => {
  const hostNames = async (rows: BanRow[]) => {
    const selector = await selectorViews(app.db, rows);
    const now = Date.now();
    return (r: BanRow) => ({
      id: r.id,
      list: r.list,
      address: r.address,
      reason: r.reason,
      selector: selector(r),
      source: r.source,
      createdBy: r.createdBy,
      createdAt: iso(r.createdAt),
      expiresAt: iso(r.expiresAt),
      ttlSeconds: Math.max(0, Math.ceil((r.expiresAt.getTime() - now) / 1000)),
    });
  };

  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["bans"],
        operationId: "listBans",
        summary: "List active bans",
        querystring: ListQuery,
        response: {
          200: pageOf(Ban).describe("Active bans ordered by list and address (expired ones never appear)."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const host = q.host !== undefined ? await resolveHost(app.db, q.host) : undefined;
      const after = decodeCursor(q.cursor, z.tuple([z.string(), z.string()]));
      const rows = await listBans(app.db, {
        ...(q.list && { list: q.list }),
        ...(host && { hostId: host.id }),
        ...(after && { after }),
        limit: q.limit + 1,
      });
      return page(rows, q.limit, await hostNames(rows), (r) => [r.list, r.address]);
    },
  );

  app.post(
    "/",
    {
      bodyLimit: 8 * 1024 * 1024,
      config: { access: "operate" },
      schema: {
        tags: ["bans"],
        operationId: "addBans",
        summary: "Ban addresses on a list",
        body: AddBody,
        response: {
          201: Changed.describe("The bans as stored (a ban already on the list is renewed)."),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const selector = await selectorOf(app.db, b.selector);
      const r = await addBans(app.db, req.actor, {
        list: b.list,
        addresses: b.addresses,
        ttlSeconds: b.ttlSeconds,
        reason: b.reason,
        selector,
        apiAddresses: [app.config.host],
        maxPerHost: app.config.bansMaxPerHost,
      });
      const d = await publishBanChanges(app.redis, r.changes);
      if (d.publishErrors)
        req.log.warn(
          { hosts: d.publishErrors },
          "bans recorded but not published (Redis); agents converge when they reconnect",
        );
      const items = r.rows.length <= 1000 ? r.rows.map(await hostNames(r.rows)) : [];
      const lacking = await hostsWithoutBans(
        app.db,
        r.changes.map((c) => c.hostId),
      );
      return reply.status(201).send({
        items,
        hosts: r.changes.length,
        delivered: deliveredCapable(d.deliveredTo, lacking),
        unsupported: lacking.length,
      });
    },
  );

  app.delete(
    "/:list/:address",
    {
      config: { access: "operate" },
      schema: {
        tags: ["bans"],
        operationId: "removeBan",
        summary: "Lift a ban",
        params: RemoveParams,
        response: { 200: Changed.describe("The lifted ban."), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const r = await removeBans(app.db, req.actor, req.params.list, [req.params.address]);
      const d = await publishBanChanges(app.redis, r.changes);
      const lacking = await hostsWithoutBans(
        app.db,
        r.changes.map((c) => c.hostId),
      );
      return {
        items: r.rows.map(await hostNames(r.rows)),
        hosts: r.changes.length,
        delivered: deliveredCapable(d.deliveredTo, lacking),
        unsupported: lacking.length,
      };
    },
  );
};
