// Liveness, readiness (Postgres and Redis answer) and Prometheus metrics. Public: probes
// and scrapers carry no API tokens. /metrics tells fleet counts, so it can be closed with
// its own bearer token (PALISADE_METRICS_TOKEN): a scraper's secret, not an API token.
import { timingSafeEqual } from "node:crypto";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { bearerOf, hashSecret } from "../auth.ts";
import { ApiError, errorResponses } from "../errors.ts";

const Check = z.object({ ok: z.boolean(), error: z.string().optional() });
const Ready = z.object({
  status: z.enum(["ready", "unavailable"]),
  checks: z.object({ postgres: Check, redis: Check }),
});

const READY_TIMEOUT_MS = 2000;

// The probe is public: the raw error (host names, database names, driver text) goes to the
// log, the response only says which dependency did not answer.
async function check(
  probe: () => Promise<unknown>,
  what: string,
  log: { warn: (o: object, m: string) => void },
): Promise<z.infer<typeof Check>> {
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
    return {
      ok: false,
      error: timedOut
        ? `no answer within ${READY_TIMEOUT_MS} ms`
        : "unreachable or refused the check (details in the API's log)",
    };
  } finally {
    clearTimeout(timer);
  }
}

export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  const metricsToken = app.config.metrics.token;
  const expected = metricsToken === undefined ? undefined : Buffer.from(hashSecret(metricsToken), "hex");
  /** With a metrics token configured: the scrape must present it; a wrong one counts as a failed authentication. */
  const checkMetricsToken = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!expected) return;
    await app.authThrottle.check(req.ip);
    const presented = bearerOf(req);
    if (presented && timingSafeEqual(Buffer.from(hashSecret(presented), "hex"), expected)) return;
    await app.authThrottle.fail(req.ip);
    reply.header(
      "www-authenticate",
      `Bearer realm="palisade-metrics"${presented === undefined ? "" : ', error="invalid_token"'}`,
    );
    throw new ApiError(
      401,
      "unauthorized",
      "this server's /metrics needs its metrics token (Authorization: Bearer <PALISADE_METRICS_TOKEN>)",
    );
  };

  app.get(
    "/healthz",
    {
      config: { access: "public" },
      schema: {
        tags: ["health"],
        operationId: "liveness",
        summary: "Liveness probe",
        security: [],
        response: { 200: z.object({ status: z.literal("ok") }).describe("The process is up.") },
      },
    },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    {
      config: { access: "public" },
      schema: {
        tags: ["health"],
        operationId: "readiness",
        summary: "Readiness probe (PostgreSQL and Redis answer)",
        security: [],
        response: {
          200: Ready.describe("PostgreSQL and Redis answered within 2 s."),
          503: Ready.describe("PostgreSQL or Redis did not answer; `checks` names which and why."),
        },
      },
    },
    async (_req, reply) => {
      const [postgres, redis] = await Promise.all([
        check(() => app.db.$queryRaw`SELECT 1`, "postgres", app.log),
        check(() => app.redis.ping(), "redis", app.log),
      ]);
      const ok = postgres.ok && redis.ok;
      return reply.status(ok ? 200 : 503).send({ status: ok ? "ready" : "unavailable", checks: { postgres, redis } });
    },
  );

  app.get(
    "/metrics",
    {
      config: { access: "public" },
      schema: {
        tags: ["health"],
        operationId: "metrics",
        summary: "Prometheus metrics",
        description:
          "Public unless the server has a metrics token (PALISADE_METRICS_TOKEN); then the scrape must send it as a bearer token. API tokens are not accepted here.",
        security: [{}, { metricsToken: [] }],
        response: {
          200: {
            description: "Prometheus text exposition format 0.0.4 (see docs/api.md for the metrics).",
            content: { "text/plain": { schema: z.string() } },
          },
          ...errorResponses(401, 429),
        },
      },
    },
    async (req, reply) => {
      await checkMetricsToken(req, reply);
      return reply.type(app.metrics.registry.contentType).send(await app.metrics.scrape());
    },
  );
};
