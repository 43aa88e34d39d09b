// The fleet: hosts that run the Palisade agent. Agents create and update their own rows
// (enrollment, heartbeats, reports) over gRPC; here admins read them and set labels.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { recordAudit } from "../audit.ts";
import type { Prisma } from "../db/client.ts";
import { hostWhere } from "../db/hosts.ts";
import { publishToHost } from "../host-bus.ts";
import { errorResponses, notFound } from "../errors.ts";
import { byName, page, pageOf, PageQuery } from "../paging.ts";
import { iso, isoOrNull, LabelKey, Labels, LabelValue, Timestamp } from "../schemas.ts";

const VersionRef = z.object({ ruleset: z.string(), version: z.number().int() }).nullable();
const Host = z.object({
  id: z.uuid(),
  name: z.string(),
  labels: Labels,
  capabilities: z.record(z.string(), z.unknown()),
  connection: z.enum(["never_connected", "connected", "disconnected"]),
  disabled: z.boolean().describe("disabled by an admin: the agent's credential is refused"),
  lastSeenAt: Timestamp.nullable(),
  desiredVersion: VersionRef,
  appliedVersion: VersionRef,
  drift: z.boolean(),
  driftDetails: z.unknown().describe("the agent's last drift report; null when none"),
  spool: z
    .object({ batches: z.number().int(), bytes: z.number().int(), reportedAt: Timestamp })
    .nullable()
    .describe(
      "telemetry batches waiting in the agent's spool (not yet acknowledged) and their bytes on disk, as its last heartbeat reported; null when the agent never reported it",
    ),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
const HostParams = z.strictObject({ id: z.string().min(1).max(253).describe("host id or name") });
const HostQuery = PageQuery.extend({
  label: z
    .string()
    .regex(/^[^=,]+=[^=,]*(,[^=,]+=[^=,]*)*$/, "key=value[,key=value...]")
    .optional()
    .describe("label selector: every key=value must match, e.g. role=edge,zone=eu-1"),
  connection: z.enum(["never_connected", "connected", "disconnected"]).optional(),
});
const PatchHost = z.strictObject({
  labels: z
    .record(LabelKey, LabelValue.nullable())
    .describe("merged into the labels (JSON merge patch): null removes a key"),
});

const versionRef = { select: { number: true, ruleset: { select: { name: true } } } } as const;
const hostInclude = { desiredVersion: versionRef, appliedVersion: versionRef } as const;
type HostRow = Prisma.HostGetPayload<{ include: typeof hostInclude }>;

const refView = (v: HostRow["appliedVersion"]) => (v ? { ruleset: v.ruleset.name, version: v.number } : null);
const hostView = (h: HostRow): z.infer<typeof Host> => ({
  id: h.id,
  name: h.name,
  labels: h.labels as Labels,
  capabilities: h.capabilities as Record<string, unknown>,
  connection: h.connection,
  disabled: h.disabled,
  lastSeenAt: isoOrNull(h.lastSeenAt),
  desiredVersion: refView(h.desiredVersion),
  appliedVersion: refView(h.appliedVersion),
  drift: h.drift,
  driftDetails: h.driftDetails ?? null,
  spool:
    h.spoolReportedAt && h.spoolBatches !== null && h.spoolBytes !== null
      ? { batches: Number(h.spoolBatches), bytes: Number(h.spoolBytes), reportedAt: iso(h.spoolReportedAt) }
      : null,
  createdAt: iso(h.createdAt),
  updatedAt: iso(h.updatedAt),
});

export const hostRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["hosts"],
        operationId: "listHosts",
        summary: "List hosts",
        querystring: HostQuery,
        response: { 200: pageOf(Host).describe("A page of hosts ordered by name."), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const { label, connection, cursor } = req.query;
      const order = byName(cursor);
      const labels = (label?.split(",") ?? []).map((kv) => kv.split("=") as [string, string]);
      const rows = await app.db.host.findMany({
        where: {
          AND: [
            order.where,
            ...(connection ? [{ connection }] : []),
            ...labels.map(([k, v]) => ({ labels: { path: [k], equals: v } })),
          ],
        },
        orderBy: order.orderBy,
        take: req.query.limit + 1,
        include: hostInclude,
      });
      return page(rows, req.query.limit, hostView, order.keyOf);
    },
  );

  app.get(
    "/:id",
    {
      config: { access: "read" },
      schema: {
        tags: ["hosts"],
        operationId: "getHost",
        summary: "Get a host",
        params: HostParams,
        response: {
          200: Host.describe("The host: connection, labels, versions, drift and capabilities."),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => {
      const h = await app.db.host.findUnique({ where: hostWhere(req.params.id), include: hostInclude });
      if (!h) throw notFound(`host "${req.params.id}"`);
      return hostView(h);
    },
  );

  app.patch(
    "/:id",
    {
      config: { access: "admin" },
      schema: {
        tags: ["hosts"],
        operationId: "updateHostLabels",
        summary: "Change a host's labels",
        params: HostParams,
        body: PatchHost,
        response: { 200: Host.describe("The host with its new labels."), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const updated = await app.db.$transaction(async (tx) => {
        const h = await tx.host.findUnique({ where: hostWhere(req.params.id), select: { id: true, name: true } });
        if (!h) throw notFound(`host "${req.params.id}"`);
        // Read the labels under a row lock: concurrent patches must not lose each other's keys.
        const [locked] = await tx.$queryRaw<
          { labels: Labels }[]
        >`SELECT labels FROM hosts WHERE id = ${h.id}::uuid FOR UPDATE`;
        const labels: Record<string, string> = { ...locked?.labels };
        for (const [k, v] of Object.entries(req.body.labels)) {
          if (v === null) delete labels[k];
          else labels[k] = v;
        }
        const u = await tx.host.update({
          where: { id: h.id },
          data: { labels, updatedAt: new Date() },
          include: hostInclude,
        });
        await recordAudit(tx, req.actor, "host.labels.update", `host:${h.name}`, { id: h.id, patch: req.body.labels });
        return u;
      });
      return hostView(updated);
    },
  );

  // Revocation. The row change commits first, so the credential is refused at connect from
  // then on; the notice then ends a live stream on whichever replica holds it (and the
  // replica's sweep ends it anyway if the notice is lost).
  const revoke = async (hostId: string, reason: "deleted" | "disabled") => {
    await publishToHost(app.redis, hostId, { type: "revoke", reason }).catch((err: Error) =>
      app.log.warn({ err: err.message, hostId }, "revocation notice not published; the stream ends at the next sweep"),
    );
  };

  app.delete(
    "/:id",
    {
      config: { access: "admin" },
      schema: {
        tags: ["hosts"],
        operationId: "deleteHost",
        summary: "Delete a host and revoke its credential",
        description:
          "Its live agent stream is closed; the agent must enroll again with a new token. Its deployment targets and quota state go with it.",
        params: HostParams,
        response: { 204: z.undefined().describe("Deleted."), ...errorResponses(401, 403, 404) },
      },
    },
    async (req, reply) => {
      const h = await app.db.$transaction(async (tx) => {
        const h = await tx.host.findUnique({ where: hostWhere(req.params.id), select: { id: true, name: true } });
        if (!h) throw notFound(`host "${req.params.id}"`);
        await tx.host.delete({ where: { id: h.id } });
        await recordAudit(tx, req.actor, "host.delete", `host:${h.name}`, { id: h.id });
        return h;
      });
      await revoke(h.id, "deleted");
      return reply.status(204).send();
    },
  );

  for (const disabled of [true, false]) {
    app.post(
      `/:id/${disabled ? "disable" : "enable"}`,
      {
        config: { access: "admin" },
        schema: {
          tags: ["hosts"],
          operationId: disabled ? "disableHost" : "enableHost",
          summary: disabled
            ? "Disable a host (refuse its credential, close its stream)"
            : "Enable a disabled host again",
          params: HostParams,
          response: { 200: Host.describe("The host."), ...errorResponses(401, 403, 404) },
        },
      },
      async (req) => {
        const updated = await app.db.$transaction(async (tx) => {
          const h = await tx.host.findUnique({ where: hostWhere(req.params.id), select: { id: true, name: true } });
          if (!h) throw notFound(`host "${req.params.id}"`);
          const u = await tx.host.update({
            where: { id: h.id },
            data: { disabled, updatedAt: new Date() },
            include: hostInclude,
          });
          await recordAudit(tx, req.actor, disabled ? "host.disable" : "host.enable", `host:${h.name}`, { id: h.id });
          return u;
        });
        if (disabled) await revoke(updated.id, "disabled");
        return hostView(updated);
      },
    );
  }
};
