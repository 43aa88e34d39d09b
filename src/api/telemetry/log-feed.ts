// The live log feed behind GET /v1/logs/stream: one Redis subscriber connection per replica,
// shared by all of its streams (one connection per stream made 2,000 viewers 2,010 Redis
// clients), a cap of concurrent streams per token, and the end of a stream when its token
// is revoked (on any replica: a notice on palisade:tokens:revoked, with a sweep of the
// open streams' tokens in PostgreSQL as the backstop) or when Redis goes away.
import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";
import { ApiError } from "../errors.ts";
import type { Log } from "../log.ts";
import { redisReady, redisUnavailable } from "../redis.ts";
import { LOGS_CHANNEL, TOKEN_REVOKED_CHANNEL, type LogEventView } from "./channels.ts";

/** Why a stream ended, sent to the client as the data of a final `event: end`. */
export type EndReason = "token_revoked" | "redis_unavailable" | "server_closing" | "max_events" | "client_gone";

export interface FeedStream {
  tokenId: string;
  onEvent(e: LogEventView): void;
  onEnd(reason: EndReason): void;
}

export interface LogFeedOptions {
  /** Concurrent streams one token may hold on this replica (SSE_STREAMS_PER_TOKEN). */
  perToken: number;
  /** How often open streams' tokens are checked in PostgreSQL (the revocation backstop). */
  sweepMs?: number;
}

export class LogFeed {
  private sub: Redis | undefined;
  private subscribing: Promise<Redis> | undefined;
  /** Whether the shared subscription is up: unknown while it is first made (opens wait for it). */
  private subscribed: boolean | undefined;
  private readonly streams = new Set<FeedStream>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly db: Db,
    private readonly log: Log,
    private readonly opts: LogFeedOptions,
  ) {
    this.sweep = setInterval(() => void this.sweepRevoked(), opts.sweepMs ?? 30_000);
    this.sweep.unref();
  }

  get size(): number {
    return this.streams.size;
  }

  /**
   * Admit a stream: 503 while Redis is down, 429 past the token's cap. Resolves once the
   * shared subscription is confirmed, so no event published after this is missed.
   * Returns the function that detaches it (idempotent).
   */
  async open(stream: FeedStream): Promise<() => void> {
    if (!redisReady(this.redis) || this.subscribed === false) throw redisUnavailable("the live log stream");
    const held = [...this.streams].filter((s) => s.tokenId === stream.tokenId).length;
    if (held >= this.opts.perToken) {
      throw new ApiError(
        429,
        "rate_limited",
        `this token already has ${held} live log streams open on this server (SSE_STREAMS_PER_TOKEN is ${this.opts.perToken}): close one, or use another token`,
        [],
        { "retry-after": "5" },
      );
    }
    // Counted before the await: concurrent opens of one token cannot all pass the cap.
    this.streams.add(stream);
    try {
      await this.subscriber();
    } catch {
      this.streams.delete(stream);
      throw redisUnavailable("the live log stream");
    }
    return () => void this.streams.delete(stream);
  }

  /** End every stream of this token (it was revoked). */
  endToken(tokenId: string): void {
    for (const s of [...this.streams]) if (s.tokenId === tokenId) this.end(s, "token_revoked");
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    for (const s of [...this.streams]) this.end(s, "server_closing");
    this.sub?.disconnect();
    this.sub = undefined;
    this.subscribing = undefined;
  }

  private end(s: FeedStream, reason: EndReason): void {
    if (!this.streams.delete(s)) return;
    s.onEnd(reason);
  }

  private subscriber(): Promise<Redis> {
    if (this.sub && this.subscribing) return this.subscribing;
    const sub = this.redis.duplicate({ lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.sub = sub;
    sub.on("message", (channel: string, text: string) => this.dispatch(channel, text));
    sub.on("error", () => {}); // reconnects by itself; 'close' below ends the streams
    // The link dropped: events published meanwhile would be missed without a sign, so the
    // streams end (clients reconnect and get 503 until Redis is back). ioredis reconnects
    // and resubscribes this connection by itself.
    sub.on("ready", () => {
      // A reconnect: ioredis resubscribes as its first command, ahead of any new stream's.
      if (this.subscribed === false) this.subscribed = true;
    });
    sub.on("close", () => {
      if (this.subscribed) this.subscribed = false;
      if (this.streams.size)
        this.log.warn({ streams: this.streams.size }, "live log streams ended: lost the Redis subscription");
      for (const s of [...this.streams]) this.end(s, "redis_unavailable");
    });
    this.subscribing = (async () => {
      await sub.connect();
      await sub.subscribe(LOGS_CHANNEL, TOKEN_REVOKED_CHANNEL);
      this.subscribed = true;
      return sub;
    })();
    this.subscribing.catch(() => {
      // The first connect failed: start over at the next stream.
      if (this.sub === sub) {
        this.sub = undefined;
        this.subscribing = undefined;
        this.subscribed = undefined;
        sub.disconnect();
      }
    });
    return this.subscribing;
  }

  private dispatch(channel: string, text: string): void {
    if (channel === TOKEN_REVOKED_CHANNEL) return this.endToken(text);
    let e: LogEventView;
    try {
      e = JSON.parse(text) as LogEventView;
    } catch {
      return;
    }
    for (const s of [...this.streams]) s.onEvent(e);
  }

  private async sweepRevoked(): Promise<void> {
    const ids = [...new Set([...this.streams].map((s) => s.tokenId))];
    if (ids.length === 0) return;
    try {
      const live = await this.db.apiToken.findMany({
        where: { id: { in: ids }, revokedAt: null },
        select: { id: true },
      });
      const ok = new Set(live.map((t) => t.id));
      for (const id of ids) if (!ok.has(id)) this.endToken(id);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "live log stream token sweep failed");
    }
  }
}

/** Tell every replica that a token was revoked (best effort: the sweep is the backstop). */
export function publishTokenRevoked(redis: Redis, tokenId: string): Promise<number> {
  return redis.publish(TOKEN_REVOKED_CHANNEL, tokenId);
}
