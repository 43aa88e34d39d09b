// The kernels' dynamic sets per host (docs/dynamic-sets.md): what the port-scan trap,
// SYN-flood, recent lists and meters hold right now, read live from the host's agent, and
// lifting one element. Only sets the policy made dynamic can be named; any other name is
// refused (400 not_dynamic_set) before or by the agent, nothing changed. Lifts are audited,
// and so is a lift the agent left unanswered (outcome "unknown": it may have happened).
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { dynamicSets } from "../../engine/index.ts";
import { recordAudit } from "../audit.ts";
import { hostWhere } from "../db/hosts.ts";
import { AgentAsker, isAgentTimeout, type DynamicSetsQuestion } from "../dynamic-sets/index.ts";
import { ApiError, errorResponses, notFound } from "../errors.ts";
import type { DynamicSetsResult } from "../grpc/messages.ts";

const SetName = z.string().min(1).max(64);
const Element = z.object({
  address: z.string(),
  timeoutSeconds: z.number().describe("the element's timeout"),
  expiresSeconds: z.number().describe("time left before the kernel drops it"),
});
const DynamicSet = z.object({
  name: z.string(),
  type: z.string().describe("ipv4_addr | ipv6_addr"),
  owner: z.string().describe("portScanTrap | synFlood | recent | recent hitcount | meter"),
  timeoutSeconds: z.number(),
  size: z.number().int(),
  rules: z.array(z.string()).describe("comments of the policy rules that use the set"),
  total: z.number().int().describe("elements the set holds"),
  elements: z.array(Element).describe("up to `limit` of them"),
});
const Listing = z.object({ host: z.string(), readAt: z.string(), sets: z.array(DynamicSet) });
const HostParams = z.strictObject({ host: z.string().min(1).max(253) });
const LiftParams = HostParams.extend({ set: SetName, address: z.string().min(1).max(64) });
const ListQuery = z.strictObject({
  set: SetName.optional().describe("only this set"),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000).describe("elements per set at most"),
});

/** The agent's refusal as an API error with its stable code. */
function agentError(r: DynamicSetsResult, host: string): ApiError {
  const status = { not_dynamic_set: 400, malformed_address: 400, not_found: 404 }[r.errorCode] ?? 502;
  const code = status === 404 ? "not_found" : status === 400 ? "invalid_request" : "unavailable";
  return new ApiError(status, code, `host "${host}": ${r.error}`, [
    { path: "/set", code: r.errorCode || "kernel_error", message: r.error },
  ]);
}

const view = (r: DynamicSetsResult) =>
  r.sets.map((s) => ({
    name: s.name,
    type: s.type,
    owner: s.owner,
    timeoutSeconds: Number(s.timeoutMs) / 1000,
    size: s.size,
    rules: s.rules,
    total: s.total,
    elements: s.elements.map((e) => ({
      address: e.address,
      timeoutSeconds: Number(e.timeoutMs) / 1000,
      expiresSeconds: Number(e.expiresMs) / 1000,
    })),
  }));

export const dynamicSetRoutes: FastifyPluginAsyncZod = async (app) => {
  const asker = new AgentAsker(app);
  app.addHook("onClose", async () => asker.close());
  const host = async (idOrName: string) => {
    const h = await app.db.host.findUnique({
      where: hostWhere(idOrName),
      select: { id: true, name: true, connection: true, lastSeenAt: true, capabilities: true },
    });
    if (!h) throw notFound(`host "${idOrName}"`);
    return h;
  };

  app.get(
    "/:host/dynamic-sets",
    {
      config: { access: "read" },
      schema: {
        tags: ["hosts"],
        operationId: "listDynamicSets",
        summary: "What the host's dynamic sets hold now (trap bans, SYN-flood, recent lists, meters)",
        params: HostParams,
        querystring: ListQuery,
        response: {
          200: Listing.describe("Read from the host's kernel by its agent, now."),
          ...errorResponses(400, 401, 404, 409, 429, 504),
        },
      },
    },
    async (req) => {
      const h = await host(req.params.host);
      const q: DynamicSetsQuestion = { limit: req.query.limit, ...(req.query.set && { set: req.query.set }) };
      if (q.set && dynamicSets.ownerOf(q.set) === undefined)
        throw new ApiError(400, "invalid_request", `"${q.set}" is not a dynamic set of the policy`, [
          { path: "/set", code: "not_dynamic_set", message: `"${q.set}" is not a dynamic set of the policy` },
        ]);
      const { result: r, readAt } = await asker.read(h, q);
      if (r.errorCode) throw agentError(r, h.name);
      return { host: h.name, readAt: readAt.toISOString(), sets: view(r) };
    },
  );

  app.delete(
    "/:host/dynamic-sets/:set/elements/:address",
    {
      config: { access: "operate" },
      schema: {
        tags: ["hosts"],
        operationId: "liftDynamicSetElement",
        summary: "Lift one element of a dynamic set (e.g. a port-scan trap ban) on one host",
        params: LiftParams,
        response: {
          200: z
            .object({ host: z.string(), set: z.string(), address: z.string(), lifted: z.literal(true) })
            .describe("The element is gone from the host's kernel set."),
          ...errorResponses(400, 401, 403, 404, 409, 504),
        },
      },
    },
    async (req) => {
      const h = await host(req.params.host);
      const c = dynamicSets.checkLift(req.params.set, req.params.address);
      if (!c.ok)
        throw new ApiError(400, "invalid_request", c.error.message, [
          {
            path: c.error.code === "invalid_set_name" ? "/set" : "/address",
            code: c.error.code === "invalid_set_name" ? "not_dynamic_set" : c.error.code,
            message: c.error.message,
          },
        ]);
      const audit = (outcome: "lifted" | "unknown") =>
        app.db.$transaction((tx) =>
          recordAudit(tx, req.actor, "dynamic_set.lift", `host:${h.name}`, {
            hostId: h.id,
            set: req.params.set,
            address: c.address,
            outcome,
          }),
        );
      let r: DynamicSetsResult;
      try {
        r = await asker.lift(h, req.params.set, c.address);
      } catch (e) {
        // The agent may have lifted it and its answer was lost: the attempt is on record.
        if (isAgentTimeout(e)) await audit("unknown");
        throw e;
      }
      if (r.errorCode) throw agentError(r, h.name);
      await audit("lifted");
      return { host: h.name, set: req.params.set, address: c.address, lifted: true as const };
    },
  );
};
