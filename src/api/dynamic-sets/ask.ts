// Asking an agent about its kernel's dynamic sets (docs/dynamic-sets.md). The question
// goes on the host's bus channel to whichever replica holds the agent's stream; the
// agent's answer comes back on a reply channel of its own request id, which this replica
// subscribed to before asking. Nothing is stored: an offline host is an error at once
// (PUBLISH reaches no replica), a silent one after `timeoutMs`.
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

export const replyChannel = (requestId: string) => `palisade:reply:${requestId}`;

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

function offline(h: AskHost): ApiError {
  const since = h.lastSeenAt ? `; last seen ${h.lastSeenAt.toISOString()}` : "; it never connected";
  return new ApiError(
    409,
    "host_offline",
    `host "${h.name}" has no agent stream up${since}: its dynamic sets can only be read or changed while its agent is connected`,
  );
}

export async function askAgent(
  ctx: { db: Db; redis: Redis },
  host: AskHost,
  q: DynamicSetsQuestion,
  timeoutMs = ASK_TIMEOUT_MS,
): Promise<DynamicSetsResult> {
  if (host.connection !== "connected") throw offline(host);
  const f = (host.capabilities as { features?: unknown } | null)?.features;
  if (Array.isArray(f) && !f.includes(DYNAMIC_SETS_CAPABILITY))
    throw new ApiError(
      409,
      "unsupported",
      `host "${host.name}" runs an agent older than dynamic-set listing; upgrade it to read or lift its dynamic sets`,
    );
  const requestId = randomUUID();
  const sub = ctx.redis.duplicate({ lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await sub.connect();
    let settle: (r: Reply) => void = () => {};
    const answered = new Promise<Reply>((resolve) => (settle = resolve));
    sub.on("message", (_ch: string, text: string) => {
      try {
        const r = Reply.parse(JSON.parse(text));
        // Only the asked host's answer counts.
        if (r.hostId === host.id && r.result.requestId === requestId) settle(r);
      } catch {
        /* not an answer */
      }
    });
    await sub.subscribe(replyChannel(requestId));
    const listeners = await publishToHost(ctx.redis, host.id, {
      type: "dynamic_sets",
      requestId,
      ...(q.set && { set: q.set }),
      ...(q.limit && { limit: q.limit }),
      ...(q.deleteSet && { deleteSet: q.deleteSet, deleteAddress: q.deleteAddress ?? "" }),
    });
    if (listeners === 0) throw offline(host);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
    const r = await Promise.race([answered, timedOut]).finally(() => clearTimeout(timer));
    if (!r)
      throw new ApiError(
        504,
        "agent_timeout",
        `host "${host.name}"'s agent did not answer within ${timeoutMs / 1000} s; nothing is known about its dynamic sets (a lift may or may not have happened)`,
      );
    return r.result;
  } finally {
    sub.disconnect();
  }
}
