// `palisade server`: migrate, connect, bootstrap the admin token, serve REST, start the
// background services, and shut all of it down cleanly on SIGINT/SIGTERM.
import { buildApp } from "./app.ts";
import { ensureAdminToken } from "./bootstrap.ts";
import { ConfigError, type Config } from "./config.ts";
import { checkSecretKey, ensureCa } from "./tls/ca.ts";
import { createDb } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import { createRedis, reportOutages } from "./redis.ts";
import { backgroundServices, type BackgroundService, type RunningService } from "./services.ts";

export interface ServerOptions {
  /** Skip migrations (when another process or an init container runs them). */
  skipMigrate?: boolean;
  /**
   * Aborted when the process is asked to stop. The caller installs its signal handlers
   * before calling, so a signal during start-up stops what has started instead of
   * killing the process halfway (listening, services half started).
   */
  signal?: AbortSignal;
  /** The services to run beside REST (tests give their own; default: services.ts's list). */
  services?: BackgroundService[];
  /**
   * How long one service may take to stop before shutdown goes on without it (ms). A
   * stop that never ends (seen: a BullMQ worker whose blocking connection was lost with
   * Redis never finished close()) must not keep the process alive after SIGTERM.
   */
  serviceStopMs?: number;
}

const SERVICE_STOP_MS = 10_000;

/** Start-up was cut short by `signal`: everything started so far has been stopped. */
export class StartAborted extends Error {
  override name = "StartAborted";
  constructor() {
    super("stopped during start-up");
  }
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

export async function runServer(config: Config, opts: ServerOptions = {}): Promise<RunningServer> {
  // Refuse to start before touching anything when the CA key could not be decrypted anyway.
  if (config.agentTls.mode === "mtls") {
    try {
      checkSecretKey(config.agentTls.secretKey);
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  PALISADE_SECRET_KEY: ${(err as Error).message}`);
    }
  }
  const db = createDb(config.databaseUrl);
  // Fail the first command that needs Redis rather than queueing forever while it is down.
  const redis = createRedis(config.redisUrl);
  const app = await buildApp({
    config,
    db,
    redis,
    logger: { level: config.logLevel, redact: ["req.headers.authorization"] },
  });
  const log = app.log;
  reportOutages(redis, log);
  const running: { name: string; service: RunningService }[] = [];
  const stopMs = opts.serviceStopMs ?? SERVICE_STOP_MS;
  // Stops what has started, newest first; used both on shutdown and when start-up fails.
  const stopAll = async () => {
    for (const { name, service } of running.reverse()) {
      log.info({ service: name }, "stopping service");
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        service.stop().then(
          () => "stopped" as const,
          (err: unknown) => {
            log.error({ service: name, err }, "service stop failed");
            return "failed" as const;
          },
        ),
        new Promise<"timeout">((resolve) => (timer = setTimeout(resolve, stopMs, "timeout"))),
      ]);
      clearTimeout(timer);
      if (outcome === "timeout")
        log.error(
          { service: name, waitedMs: stopMs },
          "service did not stop in time; shutting down without it (its unfinished work resumes at the next start)",
        );
    }
    await app.close().catch((err) => log.error({ err }, "http server close failed"));
    await db.$disconnect().catch(() => {});
    redis.disconnect();
    log.info("server stopped");
  };
  // Checked between start-up steps: each step finishes (a migration is never cut in half).
  const continueStarting = () => {
    if (opts.signal?.aborted) throw new StartAborted();
  };
  try {
    continueStarting();
    if (!opts.skipMigrate) {
      const r = await migrate(config.databaseUrl, { log });
      log.info({ applied: r.applied.length, alreadyApplied: r.alreadyApplied.length }, "database schema is current");
      continueStarting();
    }
    await redis.connect();
    await ensureAdminToken(db, config.adminToken, log, {
      tokenFile: config.initialTokenFile,
      terminal: process.stderr,
    });
    // The CA exists before REST serves: enrollment tokens carry its fingerprint.
    if (config.agentTls.mode === "mtls")
      log.info({ caFingerprint: (await ensureCa(db, config.agentTls.secretKey!)).fingerprint }, "agent CA ready");
    else log.warn("PALISADE_GRPC_PLAINTEXT is set: the agent channel has no TLS (a lab only; see docs/security.md)");
    continueStarting();
    const url = await app.listen({ host: config.host, port: config.port });
    for (const service of opts.services ?? backgroundServices) {
      continueStarting();
      running.push({
        name: service.name,
        service: await service.start({ config, db, redis, log: log.child({ service: service.name }) }),
      });
      log.info({ service: service.name }, "service started");
    }
    continueStarting();
    log.info("server started");
    let closing: Promise<void> | undefined;
    return { close: () => (closing ??= stopAll()), url };
  } catch (err) {
    if (err instanceof StartAborted) log.info("stop requested during start-up");
    await stopAll();
    throw err;
  }
}
