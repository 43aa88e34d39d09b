// Liveness, readiness (Postgres and Redis answer) and Prometheus metrics. Public: probes
// and scrapers carry no tokens, and nothing here reveals data.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";

const Check = z.object({ ok: z.boolean(), error: z.string().optional() });
const Ready = z.object({ status: z.enum(["ready", "unavailable"]), checks: z.object({ postgres: Check, redis: Check }) });

const READY_TIMEOUT_MS = 2000;

// The probe is public: the raw error (host names, database names, driver text) goes to the
// log, the response only says which dependency did not answer.
async function check(probe: () => Promise<unknown>, what: string, log: { warn: (o: object, m: string) => void }): Promise<z.infer<typeof Check>> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      }),
    ]);
    return { ok: true };
  } catch (err) {
    log.warn({ err: (err as Error).message, dependency: what }, "readiness check failed");
    const timedOut = (err as Error).message.startsWith("no answer within");
    return { ok: false, error: timedOut ? `no answer within ${READY_TIMEOUT_MS} ms` : "unreachable or refused the check (details in the API's log)" };
  } finally {
    clearTimeout(timer);
  }
}

export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    "/healthz",
    { config: { access: "public" }, schema: { tags: ["health"], operationId: "liveness", summary: "Liveness probe", security: [], response: { 200: z.object({ status: z.literal("ok") }).describe("The process is up.") } } },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    { config: { access: "public" }, schema: {
        tags: ["health"],
        operationId: "readiness",
        summary: "Readiness probe (PostgreSQL and Redis answer)",
        security: [],
        response: { 200: Ready.describe("PostgreSQL and Redis answered within 2 s."), 503: Ready.describe("PostgreSQL or Redis did not answer; `checks` names which and why.") },
      }, },
    async (_req, reply) => {
      const [postgres, redis] = await Promise.all([check(() => app.db.$queryRaw`SELECT 1`, "postgres", app.log), check(() => app.redis.ping(), "redis", app.log)]);
      const ok = postgres.ok && redis.ok;
      return reply.status(ok ? 200 : 503).send({ status: ok ? "ready" : "unavailable", checks: { postgres, redis } });
    },
  );

  app.get(
    "/metrics",
    { config: { access: "public" }, schema: {
        tags: ["health"],
        operationId: "metrics",
        summary: "Prometheus metrics",
        security: [],
        response: {
          200: {
            description: "Prometheus text exposition format 0.0.4 (see docs/api.md for the metrics).",
            content: { "text/plain": { schema: z.string() } },
          },
        },
      } },
    async (_req, reply) => reply.type(app.metrics.registry.contentType).send(await app.metrics.scrape()),
  );
};
