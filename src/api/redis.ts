// The API's Redis connection and what "Redis does not answer" looks like. Commands fail at
// once while the link is down (no offline queue, one retry), so a request that needs Redis
// answers 503 instead of hanging; ioredis keeps reconnecting in the background.
import { Redis } from "ioredis";
import { ApiError } from "./errors.ts";

/** Retry-After of a 503 while Redis does not answer. */
export const REDIS_RETRY_AFTER_S = 5;

export function createRedis(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
}

/** Logs the start and the end of an outage once each (ioredis reports every reconnect attempt). */
export function reportOutages(
  redis: Redis,
  log: { warn(o: object, m: string): void; info(o: object, m: string): void },
): void {
  let down = false;
  redis.on("error", (err: Error) => {
    if (down) return;
    down = true;
    log.warn(
      { err: err.message },
      "Redis does not answer (REDIS_URL): live log streams, console sign-in and rate limits are off, rollouts wait; reconnecting",
    );
  });
  redis.on("ready", () => {
    if (!down) return;
    down = false;
    log.info({}, "Redis answers again");
  });
}

/** True when the connection is up and usable right now. */
export function redisReady(redis: Redis): boolean {
  return redis.status === "ready";
}

export function redisUnavailable(what: string): ApiError {
  return new ApiError(
    503,
    "unavailable",
    `Redis does not answer, and ${what} needs it: check that the Redis at REDIS_URL is running and reachable (GET /readyz shows it), then retry`,
    [],
    { "retry-after": String(REDIS_RETRY_AFTER_S) },
  );
}

/** Throws 503 `unavailable` unless the Redis connection is up. */
export function requireRedis(redis: Redis, what: string): void {
  if (!redisReady(redis)) throw redisUnavailable(what);
}

// ioredis' own failures: the offline queue is off, the retry budget ran out, or the
// connection closed under a command.
const REDIS_MESSAGES =
  /Stream isn't writeable and enableOfflineQueue options is false|Reached the max retries per request limit|^Connection is closed\.?$/;

export function isRedisUnavailable(err: unknown): boolean {
  if (!err || typeof err !== "object") return false;
  const e = err as { name?: string; message?: string };
  return e.name === "MaxRetriesPerRequestError" || REDIS_MESSAGES.test(e.message ?? "");
}

/** `p`, or a rejection after `ms` (the command may still run later; callers must not mind). */
export function withinMs<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
