// Builds the Fastify app: shared plumbing (errors, auth, metrics, rate limit, OpenAPI)
// and one plugin per route group. No listening here: server.ts owns the process.
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import {
  createJsonSchemaTransform,
  createJsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { Redis } from "ioredis";
import { authPlugin, bearerOf, hashSecret } from "./auth.ts";
import type { Config } from "./config.ts";
import { CpuPool, type CpuPoolOptions } from "./cpu-pool.ts";
import type { Db } from "./db/client.ts";
import { ApiError } from "./errors.ts";
import { handleError } from "./error-handler.ts";
import { metricsPlugin } from "./metrics/plugin.ts";
import { openApiDocument, zodToJsonConfig } from "./openapi.ts";
import { parseYamlBody } from "./policy-checks.ts";
import { refuseNulBytes } from "./request-guards.ts";
import { RequestLog } from "./request-log.ts";
import { routes } from "./routes/index.ts";

declare module "fastify" {
  interface FastifyInstance {
    db: Db;
    redis: Redis;
    config: Config;
    /** Worker threads for the CPU-heavy work of requests (parse, validate, diff, render). */
    cpu: CpuPool;
  }
}

export interface AppDeps {
  config: Config;
  db: Db;
  redis: Redis;
  logger?: FastifyServerOptions["logger"];
  /** Key namespace for rate-limit counters in Redis (tests isolate themselves with it). */
  rateLimitNamespace?: string;
  /** Size of the CPU pool (tests make it small to fill it). */
  cpuPool?: CpuPoolOptions;
}

export const YAML_CONTENT_TYPES = ["application/yaml", "application/x-yaml", "text/yaml"];

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const https = deps.config.https;
  const app = Fastify({
    logger: deps.logger ?? false,
    logController: new RequestLog(),
    bodyLimit: deps.config.bodyLimit,
    // `/v1/rulesets/` and `/v1/rulesets` are the same list.
    routerOptions: { ignoreTrailingSlash: true },
    // Only the named proxies may say who the client is; anyone else could forge X-Forwarded-For
    // to escape the per-address limits.
    trustProxy: deps.config.trustProxy.length > 0 ? deps.config.trustProxy : false,
    // Typed as the plain-HTTP instance either way: the routes never touch the server object.
    ...((https ? { https: { cert: https.certPem, key: https.keyPem, minVersion: "TLSv1.2" } } : {}) as object),
  }).withTypeProvider<ZodTypeProvider>();
  // HSTS on every answer of the HTTPS listener (errors and 404s too): a browser that has
  // seen it never tries plain http for this host again, so a path attacker cannot strip TLS.
  if (https && https.hstsMaxAge > 0) {
    const hsts = `max-age=${https.hstsMaxAge}`;
    app.addHook("onRequest", async (_req, reply) => {
      reply.header("strict-transport-security", hsts);
    });
  }

  app.decorate("db", deps.db);
  app.decorate("redis", deps.redis);
  app.decorate("config", deps.config);
  const cpu = new CpuPool(deps.cpuPool);
  app.decorate("cpu", cpu);
  app.addHook("onClose", async () => cpu.close());
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((req) => {
    throw new ApiError(404, "not_found", `no route ${req.method} ${req.url.split("?")[0]}`);
  });
  // A YAML (or JSON-as-YAML) body is a bare policy document: it becomes `{policy}`, so the
  // routes validate one body shape whatever the content type.
  // Parsed in the CPU pool: YAML parsing runs at about a megabyte a second.
  // Only JSON and YAML bodies (docs/api.md): text/plain is 415, not parsed into a string.
  app.removeContentTypeParser("text/plain");
  app.addHook("preValidation", refuseNulBytes);
  app.addContentTypeParser(YAML_CONTENT_TYPES, { parseAs: "string" }, async (_req: unknown, body: string | Buffer) =>
    parseYamlBody(cpu, body as string),
  );

  await app.register(metricsPlugin);
  await app.register(rateLimit, {
    max: deps.config.rateLimitPerMinute,
    timeWindow: 60_000,
    redis: deps.redis,
    nameSpace: deps.rateLimitNamespace ?? "palisade-rl:",
    // Redis down: serve unthrottled rather than fail every request (readyz reports it).
    skipOnError: true,
    // Per token when one is presented (replicas share the Redis counters), else per address.
    // Sign-in is per address whatever it carries: it is how a token is guessed.
    keyGenerator: (req) => {
      const secret = req.routeOptions.config.limitByAddress ? undefined : bearerOf(req);
      return secret ? `t:${hashSecret(secret)}` : `ip:${req.ip}`;
    },
    allowList: (req) => req.routeOptions.config.access === "public" && !req.routeOptions.config.limitByAddress,
    errorResponseBuilder: (_req, ctx) =>
      new ApiError(
        429,
        "rate_limited",
        `rate limit of ${ctx.max} requests per ${ctx.after} exceeded; retry after ${ctx.after}`,
      ),
  });
  await app.register(authPlugin, {
    failuresPerMinute: deps.config.rateLimitPerMinute,
    namespace: deps.rateLimitNamespace ?? "palisade-rl:",
  });
  await app.register(swagger, {
    openapi: openApiDocument(),
    transform: createJsonSchemaTransform({ zodToJsonConfig }),
    transformObject: createJsonSchemaTransformObject({ zodToJsonConfig }),
  });
  // The docs UI's own routes (registered by the plugin) are public like /openapi.json.
  app.addHook("onRoute", (route) => {
    if (route.url.startsWith("/docs")) route.config = { ...route.config, access: "public" };
  });
  await app.register(swaggerUi, { routePrefix: "/docs", uiConfig: { url: "/openapi.json" } });
  app.get("/openapi.json", { schema: { hide: true }, config: { access: "public" } }, async () => app.swagger());

  for (const [prefix, plugin] of routes) await app.register(plugin, { prefix });
  return app;
}
