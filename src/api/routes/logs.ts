// Packet log events (LOGMARK / log rules) shipped by the agents: a filtered, paged list
// (newest first) and a live Server-Sent Events stream of new ones.
//
// The stream: every open stream of this replica shares one Redis subscriber on
// palisade:logs (telemetry/log-feed.ts; telemetry/ingest.ts publishes each event after its
// batch committed), filtered by host and prefix here.
// Each event is `id: <event id>` + `data: <JSON>`; a `: ping` comment every
// `heartbeat` seconds (1-60, default 15) keeps proxies from closing an idle stream.
// It ends cleanly (a last `event: end` whose data is the reason) after `maxEvents` events if
// given, when its token is revoked, when Redis goes away and when the server closes; and
// when the client goes away. Auth: the bearer header, or the web console's session cookie
// (which a browser's EventSource sends).
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { ServerResponse } from "node:http";
import { z } from "zod";
import type { Prisma } from "../db/client.ts";
import { errorResponses } from "../errors.ts";
import { sseClients } from "../metrics/events.ts";
import { requireRedis } from "../redis.ts";
import { decodeCursor, page, pageOf, PageQuery } from "../paging.ts";
import { Timestamp } from "../schemas.ts";
import type { LogEventView } from "../telemetry/channels.ts";
import { LogFeed, type EndReason } from "../telemetry/log-feed.ts";
import { resolveHost } from "../telemetry/hosts.ts";
import { HostFilter, range, When } from "../telemetry/http.ts";

const Event = z.object({
  id: z.string().describe("increasing; a string because it is a 64-bit integer"),
  at: Timestamp,
  hostId: z.uuid(),
  host: z.string(),
  prefix: z.string(),
  level: z.number().int(),
  mark: z.number().int().nullable(),
  ctmark: z.number().int().nullable(),
  fields: z
    .record(z.string(), z.union([z.string(), z.number()]))
    .describe("iif, oif, saddr, daddr, protocol, sport, dport, length (when known)"),
});
const Filters = {
  host: HostFilter.optional(),
  prefix: z.string().max(64).optional().describe("events whose prefix starts with this"),
  mark: z.coerce.number().int().min(0).max(4294967295).optional().describe("events whose packet mark is this"),
};
const ListQuery = PageQuery.extend({ ...Filters, from: When.optional(), to: When.optional() });
const StreamQuery = z.strictObject({
  ...Filters,
  heartbeat: z.coerce.number().int().min(1).max(60).default(15).describe("seconds between keep-alive comments"),
  maxEvents: z.coerce.number().int().min(1).max(1_000_000).optional().describe("end the stream after this many events"),
});

const StreamResponse = {
  description:
    "A Server-Sent Events stream that stays open: every new log event as `id: <event id>`, `event: log`, `data: <the event as JSON, as in the list>`; a `: ping` comment every `heartbeat` seconds.",
  content: {
    "text/event-stream": {
      schema: z.string().describe("text/event-stream; each `data:` line is one Event object as JSON"),
    },
  },
};

export const logRoutes: FastifyPluginAsyncZod = async (app) => {
  const feed = new LogFeed(app.redis, app.db, app.log, { perToken: app.config.sseStreamsPerToken });
  app.addHook("onClose", async () => feed.close());

  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["logs"],
        operationId: "listLogEvents",
        summary: "List packet log events",
        querystring: ListQuery,
        response: {
          200: pageOf(Event).describe("A page of log events, newest first."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const host = q.host !== undefined ? await resolveHost(app.db, q.host) : undefined;
      const r = range(q);
      const before = decodeCursor(q.cursor, z.tuple([z.string().regex(/^\d+$/)]));
      const where: Prisma.LogEventWhereInput = {
        ...(host && { hostId: host.id }),
        ...(q.prefix !== undefined && { prefix: { startsWith: q.prefix } }),
        ...(q.mark !== undefined && { mark: BigInt(q.mark) }),
        ...((r.from || r.to) && { at: { ...(r.from && { gte: r.from }), ...(r.to && { lt: r.to }) } }),
        ...(before && { id: { lt: BigInt(before[0]) } }),
      };
      const rows = await app.db.logEvent.findMany({ where, orderBy: { id: "desc" }, take: q.limit + 1 });
      const names = new Map(
        (
          await app.db.host.findMany({
            where: { id: { in: [...new Set(rows.map((e) => e.hostId))] } },
            select: { id: true, name: true },
          })
        ).map((h) => [h.id, h.name]),
      );
      return page(
        rows,
        q.limit,
        (e): LogEventView => ({
          id: String(e.id),
          at: e.at.toISOString(),
          hostId: e.hostId,
          host: names.get(e.hostId) ?? e.hostId,
          prefix: e.prefix,
          level: e.level,
          mark: e.mark === null ? null : Number(e.mark),
          ctmark: e.ctmark === null ? null : Number(e.ctmark),
          fields: e.fields as Record<string, string | number>,
        }),
        (e) => [String(e.id)],
      );
    },
  );

  app.get(
    "/stream",
    {
      config: { access: "read" },
      schema: {
        tags: ["logs"],
        operationId: "streamLogEvents",
        summary: "Stream packet log events live (SSE)",
        description:
          "503 while Redis is down; 429 past SSE_STREAMS_PER_TOKEN open streams of one token on a server. The stream ends with `event: end` (data: the reason) when the token is revoked, Redis goes away, the server stops or maxEvents is reached.",
        querystring: StreamQuery,
        response: { 200: StreamResponse, ...errorResponses(400, 401, 404, 429, 503) },
      },
    },
    async (req, reply) => {
      const q = req.query;
      requireRedis(app.redis, "the live log stream");
      const host = q.host !== undefined ? await resolveHost(app.db, q.host) : undefined;
      const res: ServerResponse = reply.raw;
      let sent = 0;
      let ended = false;
      let ping: NodeJS.Timeout | undefined;
      let detach = () => {};
      const end = (reason: EndReason) => {
        if (ended) return;
        ended = true;
        detach();
        clearInterval(ping);
        sseClients.dec();
        if (reason !== "client_gone" && !res.writableEnded) res.write(`event: end\ndata: ${reason}\n\n`);
        if (!res.writableEnded) res.end();
      };
      detach = await feed.open({
        tokenId: req.actor.tokenId,
        onEnd: end,
        onEvent: (e) => {
          if (ended) return;
          if (host && e.hostId !== host.id) return;
          if (q.prefix !== undefined && !e.prefix.startsWith(q.prefix)) return;
          if (q.mark !== undefined && e.mark !== q.mark) return;
          res.write(`id: ${e.id}\nevent: log\ndata: ${JSON.stringify(e)}\n\n`);
          if (q.maxEvents !== undefined && ++sent >= q.maxEvents) end("max_events");
        },
      });
      sseClients.inc();
      reply.hijack();
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      res.write(": stream open\n\n");
      ping = setInterval(() => res.write(": ping\n\n"), q.heartbeat * 1000);
      req.raw.on("close", () => end("client_gone"));
      res.on("close", () => end("client_gone"));
    },
  );
};
