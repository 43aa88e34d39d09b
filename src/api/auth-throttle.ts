// Per-address limit on failed authentication. The general rate limiter counts per token and
// runs after auth, so requests with no token or a made-up one were answered 401 forever,
// each after a database lookup. Here failures count per address in Redis (shared by
// replicas); once an address is over the limit its token-bearing requests get 429 before
// any lookup until the window ends. Redis down: not throttled (like the general limiter).
import type { Redis } from "ioredis";
import { ApiError } from "./errors.ts";

const WINDOW_MS = 60_000;

export class AuthThrottle {
  constructor(
    private readonly redis: Redis,
    private readonly namespace: string,
    private readonly max: number,
  ) {}

  private key(ip: string): string {
    return `${this.namespace}authfail:${ip}`;
  }

  /** Throws 429 when this address already failed authentication `max` times in the window. */
  async check(ip: string): Promise<void> {
    let count: string | null;
    let ttl: number;
    try {
      [count, ttl] = await Promise.all([this.redis.get(this.key(ip)), this.redis.pttl(this.key(ip))]);
    } catch {
      return;
    }
    if (Number(count ?? 0) < this.max) return;
    const seconds = Math.max(1, Math.ceil((ttl > 0 ? ttl : WINDOW_MS) / 1000));
    throw new ApiError(
      429,
      "rate_limited",
      `too many failed authentications from this address (limit ${this.max} per minute); retry after ${seconds} s`,
      [],
      { "retry-after": String(seconds) },
    );
  }

  /** Count one failed authentication for this address. */
  async fail(ip: string): Promise<void> {
    try {
      await this.redis.multi().incr(this.key(ip)).pexpire(this.key(ip), WINDOW_MS, "NX").exec();
    } catch {
      // Redis down: not counted.
    }
  }
}
