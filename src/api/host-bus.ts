// Cross-replica delivery to agents: the one per-host Redis bus. An agent's stream lives on
// whichever replica it reached; everything meant for it (deployment offers, revocations,
// drift checks, quota resets) is published here on its host channel, and the replica
// holding the stream forwards it. A neutral module: the domain (deploy, telemetry) publishes
// and the transport (grpc) subscribes without importing each other. PUBLISH answers how many replicas listen, so a
// sender learns for free whether the host is connected anywhere right now.
import type { Redis } from "ioredis";
import { z } from "zod";
import type { Log } from "./log.ts";

/** The Redis channel of one host: whichever replica holds its agent's stream listens. */
export const hostChannel = (hostId: string) => `palisade:host:${hostId}`;

export const HostNotice = z.discriminatedUnion("type", [
  /** A deployment target for this host is ready to be claimed and sent. */
  z.object({ type: z.literal("offer"), targetId: z.uuid() }),
  /** A newer stream for this host opened (maybe on another replica): older ones end. */
  z.object({ type: z.literal("kick"), sessionId: z.uuid() }),
  /** The host was deleted or disabled: its streams end now and its credential is refused. */
  z.object({ type: z.literal("revoke"), reason: z.enum(["deleted", "disabled"]) }),
  z.object({ type: z.literal("check_drift") }),
  z.object({ type: z.literal("quota_reset"), requestId: z.string().min(1).max(128), name: z.string().min(1).max(128) }),
  /** Read the agent's dynamic sets, or lift one element; the answer goes to the request's reply channel. */
  z.object({
    type: z.literal("dynamic_sets"),
    requestId: z.uuid(),
    set: z.string().max(64).optional(),
    limit: z.number().int().min(1).max(10_000).optional(),
    deleteSet: z.string().max(64).optional(),
    deleteAddress: z.string().max(64).optional(),
  }),
  /** Ban list changes for this host (bans/): absolute expiry, turned into a TTL when sent. */
  z.object({
    type: z.literal("bans"),
    lists: z.array(
      z.object({
        list: z.string().min(1).max(32),
        add: z.array(z.object({ address: z.string().max(64), expiresAtMs: z.number().int() })),
        remove: z.array(z.string().max(64)),
      }),
    ),
  }),
  /** Operator condition values for this host (conditions/). */
  z.object({
    type: z.literal("conditions"),
    values: z.array(z.object({ name: z.string().min(1).max(27), on: z.boolean() })),
  }),
  /** The country data changed (geoip/): these countries now have `revision`; the stream sends what its agent uses. */
  z.object({
    type: z.literal("geoip"),
    countries: z.array(z.string().regex(/^[A-Z]{2}$/)).max(1000),
    revision: z.number().int().min(0),
  }),
]);
export type HostNotice = z.infer<typeof HostNotice>;

/** Publish to whichever replica holds the host's stream; resolves to the number of listeners (0 = offline). */
export function publishToHost(redis: Redis, hostId: string, notice: HostNotice): Promise<number> {
  return redis.publish(hostChannel(hostId), JSON.stringify(notice));
}

/**
 * One notice per host (a set-for-the-selected-hosts change: bans, conditions). A host with no
 * stream up counts as offline: it gets its whole state after its next Hello, so nothing waits here.
 */
export async function publishToHosts<C extends { hostId: string }>(
  redis: Redis,
  changes: C[],
  notice: (c: C) => HostNotice,
): Promise<{ delivered: number; deliveredTo: string[]; offline: number; publishErrors: number }> {
  const deliveredTo: string[] = [];
  let offline = 0;
  let publishErrors = 0;
  await Promise.all(
    changes.map((c) =>
      publishToHost(redis, c.hostId, notice(c)).then(
        (n) => (n > 0 ? deliveredTo.push(c.hostId) : offline++),
        () => publishErrors++,
      ),
    ),
  );
  return { delivered: deliveredTo.length, deliveredTo, offline, publishErrors };
}

/**
 * Local only, never published: the subscriber came back after Redis was lost and the host's
 * channel is subscribed again. Notices published meanwhile found no listener (a rollout took
 * the host for offline), so the stream re-reads what they would have said.
 */
export interface Resubscribed {
  type: "resubscribed";
}

/** The name of this process's agent bus connection in Redis. */
export const agentBusConnectionName = () => `palisade-agent-bus:${process.pid}`;

type Listener = (notice: HostNotice | Resubscribed) => void;

/** One subscriber connection per replica, shared by all of its agent streams. */
export class AgentBus {
  private readonly listeners = new Map<string, Set<Listener>>();

  private constructor(
    private readonly sub: Redis,
    private readonly log: Log,
  ) {
    sub.on("message", (channel: string, text: string) => this.dispatch(channel, text));
    // ioredis resubscribes by itself after a reconnect; say so when the link drops.
    sub.on("error", (err: Error) => log.warn({ err: err.message }, "agent bus subscriber error"));
    // Registered after the first connect: every "ready" from here on is a reconnect.
    sub.on("ready", () => void this.resubscribed());
  }

  /**
   * After a reconnect: once Redis confirms the subscriptions (ours, queued behind the ones
   * ioredis re-sends, confirm them all), every stream catches up on what it missed.
   */
  private async resubscribed(): Promise<void> {
    const channels = [...this.listeners.keys()];
    if (channels.length === 0) return;
    try {
      await this.sub.subscribe(...channels);
    } catch (err) {
      // Lost again before the answer: the next "ready" tries again.
      this.log.warn({ err: (err as Error).message }, "agent bus could not subscribe again");
      return;
    }
    this.log.info({ hosts: channels.length }, "agent bus subscribed again; streams catch up on missed notices");
    // Spread over up to 5 s (10 ms a host): a few queries each, not all at once on the pool.
    const spread = Math.min(5_000, channels.length * 10);
    for (const channel of channels) {
      const t = setTimeout(() => {
        for (const fn of this.listeners.get(channel) ?? []) fn({ type: "resubscribed" });
      }, Math.random() * spread);
      t.unref();
    }
  }

  static async start(redis: Redis, log: Log): Promise<AgentBus> {
    const sub = redis.duplicate({
      lazyConnect: true,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      // CLIENT LIST tells an operator which replica's subscriber a connection is.
      connectionName: agentBusConnectionName(),
    });
    await sub.connect();
    return new AgentBus(sub, log);
  }

  /** Listen on a host's channel; resolves once Redis confirmed the subscription. Returns detach. */
  async attach(hostId: string, fn: Listener): Promise<() => Promise<void>> {
    const channel = hostChannel(hostId);
    let set = this.listeners.get(channel);
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(fn);
    const subscribed = this.sub.subscribe(channel);
    // Redis down: the agent still connects and reports (PostgreSQL is what it needs); the
    // subscription goes out when Redis is back, and notices published meanwhile are lost,
    // which the deploy worker's offers and the revocation sweep make up for.
    if (this.sub.status === "ready") await subscribed;
    else
      subscribed.catch((err: Error) =>
        this.log.warn({ err: err.message, channel }, "host channel subscription failed"),
      );
    return async () => {
      const s = this.listeners.get(channel);
      if (!s?.delete(fn) || s.size > 0) return;
      this.listeners.delete(channel);
      await this.sub.unsubscribe(channel).catch(() => {});
    };
  }

  async stop(): Promise<void> {
    this.listeners.clear();
    this.sub.disconnect();
  }

  private dispatch(channel: string, text: string): void {
    const set = this.listeners.get(channel);
    if (!set) return;
    let notice: HostNotice;
    try {
      notice = HostNotice.parse(JSON.parse(text));
    } catch {
      this.log.warn({ channel }, "ignored a malformed host notice");
      return;
    }
    for (const fn of set) fn(notice);
  }
}
