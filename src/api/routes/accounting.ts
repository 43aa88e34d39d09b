// Accounting: the tables the fleet reports, per-address totals over a time
// range, top talkers, and time series. Counters are JSON numbers up to 2^53 and decimal
// strings above (telemetry/u64.ts). The unattributed remainder of a table (traffic the
// kernel counted in the table's total but under no address) is the row with ip "" and
// unattributed: true; for a 0.0.0.0/0 table it is the only row, as in ACCOUNT's slot 0.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { errorResponses, notFound } from "../errors.ts";
import { decodeCursor, encodeCursor, page, pageOf, PageQuery } from "../paging.ts";
import { Timestamp } from "../schemas.ts";
import { UNATTRIBUTED } from "../telemetry/batch.ts";
import { resolveHostId } from "../telemetry/hosts.ts";
import { HostFilter, range, TableName, When } from "../telemetry/http.ts";
import { addressTotals, listTables, series, stepMs, tableExists, topTalkers } from "../telemetry/queries.ts";
import { Counter } from "../telemetry/u64.ts";

const Table = z.object({
  name: z.string(),
  hosts: z.number().int().describe("hosts that reported it"),
  firstAt: Timestamp,
  lastAt: Timestamp,
});
const Totals = { srcBytes: Counter, srcPackets: Counter, dstBytes: Counter, dstPackets: Counter };
const Row = z.object({
  ip: z
    .string()
    .describe('IPv4/IPv6 address, or "network/n" for an aggregated table\'s prefix; "" for the unattributed remainder'),
  unattributed: z.boolean(),
  ...Totals,
});
const TopRow = Row.extend({ value: Counter.describe("the ranking value (by + direction)") });
const Point = z.object({ t: Timestamp.describe("bucket start"), ...Totals });

const TablesQuery = PageQuery.extend({ host: HostFilter.optional() });
const RowsQuery = PageQuery.extend({ host: HostFilter.optional(), from: When.optional(), to: When.optional() });
const TopQuery = z.strictObject({
  table: TableName,
  by: z.enum(["bytes", "packets"]).default("bytes"),
  direction: z.enum(["src", "dst", "both"]).default("both"),
  limit: z.coerce.number().int().min(1).max(1000).default(10),
  host: HostFilter.optional(),
  from: When.optional(),
  to: When.optional(),
});
const SeriesQuery = PageQuery.extend({
  table: TableName,
  ip: z
    .union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()])
    .optional()
    .describe('one address, or one prefix of an aggregated table ("2001:db8:1:2::/64"); default: the whole table'),
  step: z.enum(["1m", "1h", "1d"]).default("1h"),
  host: HostFilter.optional(),
  from: When.optional(),
  to: When.optional(),
});
// The range an answer really covers: retention may widen an edge to a whole day or month
// (the finer levels no longer hold it) or start it later (nothing older is kept).
const Covered = {
  from: Timestamp.describe(
    "start of the time range this answer covers (may be earlier than asked: a bucket whose finer data expired is counted whole; or later: nothing older is kept)",
  ),
  to: Timestamp.describe("end (exclusive) of the time range this answer covers"),
};
const covered = (c: { from: Date; to: Date }) => ({ from: c.from.toISOString(), to: c.to.toISOString() });
const DEFAULT_SPAN_STEPS = { "1m": 60, "1h": 24, "1d": 30 } as const;

export const accountingRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    "/tables",
    {
      config: { access: "read" },
      schema: {
        tags: ["accounting"],
        operationId: "listAccountingTables",
        summary: "List accounting tables",
        querystring: TablesQuery,
        response: {
          200: pageOf(Table).describe(
            "A page of accounting tables with the hosts that report them and their time span.",
          ),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const after = decodeCursor(q.cursor, z.tuple([z.string()]));
      const rows = await listTables(app.db, {
        hostId: await resolveHostId(app.db, q.host),
        limit: q.limit + 1,
        ...(after && { after: after[0] }),
      });
      return page(
        rows,
        q.limit,
        (r) => r,
        (r) => [r.name],
      );
    },
  );

  app.get(
    "/tables/:name",
    {
      config: { access: "read" },
      schema: {
        tags: ["accounting"],
        operationId: "getAccountingTable",
        summary: "Per-address totals of one accounting table",
        params: z.strictObject({ name: TableName }),
        querystring: RowsQuery,
        response: {
          200: pageOf(Row)
            .extend(Covered)
            .describe("A page of per-address byte and packet totals over the range (like iptaccount -l)."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const hostId = await resolveHostId(app.db, q.host);
      if (!(await tableExists(app.db, req.params.name, hostId)))
        throw notFound(`accounting table "${req.params.name}"${q.host ? ` on host "${q.host}"` : ""}`);
      const after = decodeCursor(q.cursor, z.tuple([z.string().max(64)]));
      const rows = await addressTotals(app.db, { table: req.params.name, ...(hostId && { hostId }) }, range(q), {
        limit: q.limit + 1,
        ...(after && { after: after[0] }),
      });
      return {
        ...page(
          rows.items,
          q.limit,
          (r) => r,
          (r) => [r.unattributed ? UNATTRIBUTED : r.ip],
        ),
        ...covered(rows),
      };
    },
  );

  app.get(
    "/top",
    {
      config: { access: "read" },
      schema: {
        tags: ["accounting"],
        operationId: "topTalkers",
        summary: "Top talkers of an accounting table",
        querystring: TopQuery,
        response: {
          200: pageOf(TopRow)
            .extend(Covered)
            .describe("A page of addresses ordered by traffic over the range, aggregated on the server."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const hostId = await resolveHostId(app.db, q.host);
      const top = await topTalkers(
        app.db,
        { table: q.table, ...(hostId && { hostId }) },
        range(q),
        q.by,
        q.direction,
        q.limit,
        { retention: app.config.retention },
      );
      return { items: top.items, nextCursor: null, ...covered(top) };
    },
  );

  app.get(
    "/series",
    {
      config: { access: "read" },
      schema: {
        tags: ["accounting"],
        operationId: "accountingSeries",
        summary: "Accounting time series",
        querystring: SeriesQuery,
        response: {
          200: pageOf(Point)
            .extend(Covered)
            .describe("A page of time buckets with byte and packet sums, for one address or the whole table."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const hostId = await resolveHostId(app.db, q.host);
      const r = range(q);
      const unit = stepMs(q.step);
      const to = r.to ?? new Date();
      const start = r.from ?? new Date(to.getTime() - DEFAULT_SPAN_STEPS[q.step] * unit);
      // Paging walks the time axis: each page is `limit` buckets from the cursor on.
      const after = decodeCursor(q.cursor, z.tuple([z.iso.datetime()]));
      const from = after ? new Date(after[0]) : start;
      const windowEnd = new Date(Math.min(to.getTime(), Math.floor(from.getTime() / unit) * unit + q.limit * unit));
      // from/to: what this page's points cover (a series starts where its step is still retained).
      const pts =
        from < windowEnd
          ? await series(
              app.db,
              { table: q.table, ...(hostId && { hostId }), ...(q.ip && { address: q.ip }) },
              from,
              windowEnd,
              q.step,
              { retention: app.config.retention },
            )
          : { items: [], from, to: from };
      return {
        items: pts.items,
        nextCursor: windowEnd < to ? encodeCursor([windowEnd.toISOString()]) : null,
        ...covered(pts),
      };
    },
  );
};
