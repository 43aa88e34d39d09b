// A real app over a real (throwaway) database and the real Redis, with one token per role.
// Register `after(() => t.close())` right after creating it: close() drops the database.
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { Redis } from "ioredis";
import { buildApp, type AppDeps } from "../../src/api/app.ts";
import { hashSecret } from "../../src/api/auth.ts";
import { loadConfig, type Config } from "../../src/api/config.ts";
import { createDb, type Db } from "../../src/api/db/client.ts";
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from "./db.ts";

export const ROLE_TOKENS = {
  admin: "test-admin-secret-0000000000000000",
  operator: "test-operator-secret-00000000000000",
  viewer: "test-viewer-secret-0000000000000000",
} as const;
export type TestRole = keyof typeof ROLE_TOKENS;

export interface TestApp {
  app: FastifyInstance;
  db: Db;
  redis: Redis;
  database: TestDatabase;
  config: Config;
  /** Inject a request as `as` (a role, a raw token, or null for none). JSON bodies are sent as JSON. */
  req(
    method: InjectOptions["method"],
    url: string,
    opts?: { as?: TestRole | null | { token: string }; body?: unknown; headers?: Record<string, string> },
  ): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function startTestApp(
  overrides: Partial<Config> = {},
  deps: Pick<AppDeps, "cpuPool"> = {},
): Promise<TestApp> {
  const database = await createTestDatabase();
  const db = createDb(database.url);
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  const base = loadConfig({ DATABASE_URL: database.url, REDIS_URL: TEST_REDIS_URL });
  // Tests read /metrics right after changing the fleet: no snapshot cache unless a test asks for one.
  const config: Config = {
    ...base,
    rateLimitPerMinute: 1_000_000,
    metrics: { ...base.metrics, cacheMs: 0 },
    ...overrides,
  };
  const rateLimitNamespace = `palisade-test-rl:${database.name}:`;
  let app: FastifyInstance | undefined;
  const close = async () => {
    await app?.close();
    await db.$disconnect();
    const keys = await redis.keys(`${rateLimitNamespace}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await database.drop();
  };
  try {
    app = await buildApp({ config, db, redis, rateLimitNamespace, ...deps });
    await app.ready();
    for (const role of Object.keys(ROLE_TOKENS) as TestRole[]) {
      await db.apiToken.create({
        data: { name: `test-${role}`, role, tokenHash: hashSecret(ROLE_TOKENS[role]), createdBy: "test" },
      });
    }
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
  const ready = app;
  return {
    app: ready,
    db,
    redis,
    database,
    config,
    close,
    req(method, url, opts = {}) {
      const as = opts.as === undefined ? "admin" : opts.as;
      const headers: Record<string, string> = { ...opts.headers };
      if (as !== null) headers.authorization = `Bearer ${typeof as === "string" ? ROLE_TOKENS[as] : as.token}`;
      const inject: InjectOptions = { method, url, headers };
      if (opts.body !== undefined) {
        if (typeof opts.body === "string" || Buffer.isBuffer(opts.body)) inject.payload = opts.body;
        else inject.payload = opts.body as InjectOptions["payload"];
      }
      return ready.inject(inject);
    },
  };
}

/** Body of an error response, asserted to have the envelope's shape. */
export function errorOf(res: LightMyRequestResponse): {
  code: string;
  message: string;
  details: { path: string; code: string; message: string }[];
} {
  const body = res.json() as {
    error?: { code: string; message: string; details: { path: string; code: string; message: string }[] };
  };
  if (
    !body.error ||
    typeof body.error.code !== "string" ||
    typeof body.error.message !== "string" ||
    !Array.isArray(body.error.details)
  ) {
    throw new Error(`not an error envelope (status ${res.statusCode}): ${res.body}`);
  }
  return body.error;
}
