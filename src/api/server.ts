// `palisade server`: migrate, connect, bootstrap the admin token, serve REST, start the
// background services, and shut all of it down cleanly on SIGINT/SIGTERM.
import { Redis } from "ioredis";
import { buildApp } from "./app.ts";
import { ensureAdminToken } from "./bootstrap.ts";
import type { Config } from "./config.ts";
import { createDb } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import { backgroundServices, type RunningService } from "./services.ts";

export interface ServerOptions {
  /** Skip migrations (when another process or an init container runs them). */
  skipMigrate?: boolean;
}

export async function runServer(config: Config, opts: ServerOptions = {}): Promise<{ close(): Promise<void>; url: string }> {
  const db = createDb(config.databaseUrl);
  // Fail the first command that needs Redis rather than queueing forever while it is down.
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  const app = await buildApp({
    config,
    db,
    redis,
    logger: { level: config.logLevel, redact: ["req.headers.authorization"] },
  });
  const log = app.log;
  const running: RunningService[] = [];
  // Stops what has started, newest first; used both on shutdown and when start-up fails.
  const stopAll = async () => {
    for (const s of running.reverse()) await s.stop().catch((err) => log.error({ err }, "service stop failed"));
    await app.close().catch((err) => log.error({ err }, "http server close failed"));
    await db.$disconnect().catch(() => {});
    redis.disconnect();
  };
  try {
    if (!opts.skipMigrate) {
      const r = await migrate(config.databaseUrl, { log: (msg, fields) => log.info(fields ?? {}, msg) });
      log.info({ applied: r.applied.length, alreadyApplied: r.alreadyApplied.length }, "database schema is current");
    }
    await redis.connect();
    await ensureAdminToken(db, config.adminToken, log);
    const url = await app.listen({ host: config.host, port: config.port });
    for (const service of backgroundServices) {
      running.push(await service.start({ config, db, redis, log: log.child({ service: service.name }) }));
      log.info({ service: service.name }, "service started");
    }
    let closing: Promise<void> | undefined;
    return { close: () => (closing ??= stopAll()), url };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
