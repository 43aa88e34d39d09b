// Asking an agent about its kernel's dynamic sets (docs/dynamic-sets.md). The question
// goes on the host's bus channel to whichever replica holds the agent's stream; the
// agent's answer comes back on a reply channel of its own request id. Nothing is stored:
// an offline host is an error at once (PUBLISH reaches no replica), a silent one after
// `timeoutMs`.
//
// A read makes the agent list its whole table (`nft -j`), and any viewer may ask. So each
// replica answers identical reads from one question (coalesced while in flight, then
// cached for READ_CACHE_MS), asks one host at most once per READ_GAP_MS, and refuses a
// read when READ_QUEUE_MAX are already waiting for that host (429). Lifts are never cached,
// never refused for pacing, and clear the host's cached reads.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { Db } from "../db/client.ts";
import { ApiError } from "../errors.ts";
import { publishToHost } from "../host-bus.ts";
import { DynamicSetsResult } from "../grpc/messages.ts";

/** The agent feature that says it answers DynamicSetsRequest. */
export const DYNAMIC_SETS_CAPABILITY = "dynamic_sets";
export const ASK_TIMEOUT_MS = 10_000;
export const READ_CACHE_MS = 2_000;
export const READ_GAP_MS = 1_000;
export const READ_QUEUE_MAX = 8;

const REPLY_PREFIX = "palisade:reply:";
export const replyChannel = (requestId: string) => `${REPLY_PREFIX}${requestId}`;

/** What the replica holding the stream publishes on the reply channel. */
export const Reply = z.object({ hostId: z.uuid(), result: DynamicSetsResult });
export type Reply = z.infer<typeof Reply>;

export interface AskHost {
  id: string;
  name: string;
  connection: string;
  lastSeenAt: Date | null;
  capabilities: unknown;
}

export interface DynamicSetsQuestion {
  set?: string;
  limit?: number;
  deleteSet?: string;
  deleteAddress?: string;
}

/** An agent's answer and when the kernel was read (cached reads keep their first time). */
export interface Answer {
  result: DynamicSetsResult;
  readAt: Date;
}

function offline(h: AskHost): ApiError {
  const since = h.lastSeenAt ? `; last seen ${h.lastSeenAt.toISOString()}` : "; it never connected";
  return new ApiError(
    409,
    "host_offline",
    `host "${h.name}" has no agent stream up${since}: its dynamic sets can only be read or changed while its agent is connected`,
  );
}

/** The 504 of a question the agent left unanswered (a lift may or may not have happened). */
export function isAgentTimeout(e: unknown): e is ApiError {
  return e instanceof ApiError && e.code === "agent_timeout";
}

interface HostPace {
  /** When the last read of this host was sent. */
  lastSentAt: number;
  /** The reads of this host waiting for their turn or in flight. */
  queued: number;
  /** Resolves when the previous read of this host was sent. */
  turn: Promise<void>;
}

/** One per replica: a shared reply subscription, read coalescing, a cache and per-host pacing. */
export class AgentAsker {
  private sub: Redis | undefined;
  private subscribing: Promise<Redis> | undefined;
  private readonly waiting = new Map<string, (r: Reply) => void>();
  private readonly reads = new Map<string, { at: number; answer: Promise<Answer> }>();
  private readonly pace = new Map<string, HostPace>();

  constructor(
    private readonly ctx: { db: Db; redis: Redis },
    private readonly timeoutMs = ASK_TIMEOUT_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Read a host's dynamic sets (coalesced, cached, paced). */
  async read(host: AskHost, q: { set?: string; limit?: number }): Promise<Answer> {
    const key = `${host.id}\0${q.set ?? ""}\0${q.limit ?? ""}`;
    const hit = this.reads.get(key);
    // In flight, `at` is +Infinity until the answer came: every caller shares it.
    if (hit && this.now() - hit.at < READ_CACHE_MS) return hit.answer;
    const entry = { at: Number.POSITIVE_INFINITY, answer: this.pacedRead(host, q) };
    this.reads.set(key, entry);
    entry.answer.then(
      () => {
        if (this.reads.get(key) === entry) entry.at = this.now();
      },
      () => {
        if (this.reads.get(key) === entry) this.reads.delete(key);
      },
    );
    this.trimCache();
    return entry.answer;
  }

  /** Delete one element; never cached or paced, and clears the host's cached reads. */
  async lift(host: AskHost, set: string, address: string): Promise<DynamicSetsResult> {
    this.forget(host.id);
    try {
      return await this.ask(host, { deleteSet: set, deleteAddress: address });
    } finally {
      this.forget(host.id);
    }
  }

  async close(): Promise<void> {
    for (const settle of this.waiting.values()) settle(undefined as unknown as Reply);
    this.waiting.clear();
    this.sub?.disconnect();
    this.sub = undefined;
    this.subscribing = undefined;
  }

  private forget(hostId: string): void {
    for (const k of this.reads.keys()) if (k.startsWith(`${hostId}\0`)) this.reads.delete(k);
  }

  private trimCache(): void {
    const now = this.now();
    for (const [k, e] of this.reads)
      if (e.at !== Number.POSITIVE_INFINITY && now - e.at >= READ_CACHE_MS) this.reads.delete(k);
  }

  private async pacedRead(host: AskHost, q: { set?: string; limit?: number }): Promise<Answer> {
    this.precheck(host);
    let p = this.pace.get(host.id);
    if (!p) this.pace.set(host.id, (p = { lastSentAt: Number.NEGATIVE_INFINITY, queued: 0, turn: Promise.resolve() }));
    if (p.queued >= READ_QUEUE_MAX)
      throw new ApiError(
        429,
        "rate_limited",
        `host "${host.name}" already has ${p.queued} reads of its dynamic sets waiting; retry in a few seconds`,
        [],
        { "Retry-After": String(Math.ceil((READ_GAP_MS * READ_QUEUE_MAX) / 1000)) },
      );
    const pace = p;
    pace.queued++;
    const previous = pace.turn;
    let sent: () => void = () => {};
    pace.turn = new Promise<void>((resolve) => (sent = resolve));
    try {
      await previous;
      const wait = pace.lastSentAt + READ_GAP_MS - this.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      pace.lastSentAt = this.now();
      sent();
      const result = await this.ask(host, q);
      return { result, readAt: new Date() };
    } finally {
      sent();
      pace.queued--;
      if (pace.queued === 0 && this.now() - pace.lastSentAt >= READ_GAP_MS) this.pace.delete(host.id);
    }
  }

  private precheck(host: AskHost): void {
    if (host.connection !== "connected") throw offline(host);
    const f = (host.capabilities as { features?: unknown } | null)?.features;
    if (Array.isArray(f) && !f.includes(DYNAMIC_SETS_CAPABILITY))
      throw new ApiError(
        409,
        "unsupported",
        `host "${host.name}" runs an agent older than dynamic-set listing; upgrade it to read or lift its dynamic sets`,
      );
  }

  private subscriber(): Promise<Redis> {
    if (this.subscribing) return this.subscribing;
    const sub = this.ctx.redis.duplicate({ lazyConnect: true, maxRetriesPerRequest: 1 });
    sub.on("pmessage", (_pattern: string, _channel: string, text: string) => {
      let r: Reply;
      try {
        r = Reply.parse(JSON.parse(text));
      } catch {
        return; // not an answer
      }
      this.waiting.get(r.result.requestId)?.(r);
    });
    sub.on("error", () => {}); // reconnects by itself; a question asked meanwhile times out
    this.sub = sub;
    const subscribing = (async () => {
      await sub.connect();
      await sub.psubscribe(`${REPLY_PREFIX}*`);
      return sub;
    })();
    this.subscribing = subscribing;
    subscribing.catch(() => {
      if (this.subscribing === subscribing) {
        this.subscribing = undefined;
        this.sub = undefined;
        sub.disconnect();
      }
    });
    return subscribing;
  }

  private async ask(host: AskHost, q: DynamicSetsQuestion): Promise<DynamicSetsResult> {
    this.precheck(host);
    await this.subscriber();
    const requestId = randomUUID();
    let settle: (r: Reply) => void = () => {};
    const answered = new Promise<Reply | undefined>((resolve) => (settle = resolve));
    // Only the asked host's answer to this request counts.
    this.waiting.set(requestId, (r) => {
      if (r === undefined || r.hostId === host.id) settle(r);
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      const listeners = await publishToHost(this.ctx.redis, host.id, {
        type: "dynamic_sets",
        requestId,
        ...(q.set && { set: q.set }),
        ...(q.limit && { limit: q.limit }),
        ...(q.deleteSet && { deleteSet: q.deleteSet, deleteAddress: q.deleteAddress ?? "" }),
      });
      if (listeners === 0) throw offline(host);
      const timedOut = new Promise<undefined>(
        (resolve) => (timer = setTimeout(() => resolve(undefined), this.timeoutMs)),
      );
      const r = await Promise.race([answered, timedOut]);
      if (!r)
        throw new ApiError(
          504,
          "agent_timeout",
          `host "${host.name}"'s agent did not answer within ${this.timeoutMs / 1000} s; nothing is known about its dynamic sets (a lift may or may not have happened)`,
        );
      return r.result;
    } finally {
      clearTimeout(timer);
      this.waiting.delete(requestId);
    }
  }
}
