// Quota resets: an operator asks (REST), the request is recorded with its audit row in
// one transaction, then published on the host's Redis channel for the replica holding
// that agent's stream (message shape: channels.ts). The agent resets the kernel quota
// and answers QuotaResetResult, which the stream handler passes to recordQuotaReset.
import type { Redis } from "ioredis";
import { recordAudit, type Actor } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { publishToHost } from "../host-bus.ts";
import type { QuotaResetMessage } from "./channels.ts";
import { TelemetryError } from "./errors.ts";

export interface QuotaResetContext {
  db: Db;
  redis: Redis;
}

export interface QuotaResetRequested {
  requestId: string;
  /** Replicas that received the message (0: no stream up; the request stays pending). */
  delivered: number;
  /** Redis refused the publish: the request is recorded (pending) and replayed on connect. */
  publishError?: string;
}

export async function requestQuotaReset(
  ctx: QuotaResetContext,
  hostId: string,
  name: string,
  actor: Actor = { name: "system", tokenId: null },
): Promise<QuotaResetRequested> {
  const req = await ctx.db.$transaction(async (tx) => {
    const host = await tx.host.findUnique({ where: { id: hostId }, select: { name: true } });
    if (!host) throw new TelemetryError("unknown_quota", `host ${hostId} not found`);
    const r = await tx.quotaResetRequest.create({ data: { hostId, name, requestedBy: actor.name } });
    await recordAudit(tx, actor, "quota.reset.request", `host:${host.name}`, { hostId, quota: name, requestId: r.id });
    return r;
  });
  const msg: QuotaResetMessage = { type: "quota_reset", requestId: req.id, name };
  try {
    const delivered = await publishToHost(ctx.redis, hostId, msg);
    return { requestId: req.id, delivered };
  } catch (err) {
    // Recorded as pending: the stream handler replays pending requests when the agent connects.
    return { requestId: req.id, delivered: 0, publishError: (err as Error).message };
  }
}

export interface QuotaResetResultMsg {
  requestId: string;
  name?: string;
  ok: boolean;
  error?: string;
}

/** The agent's answer. False when the request is unknown, another host's, or already finished. */
export async function recordQuotaReset(ctx: { db: Db }, hostId: string, result: QuotaResetResultMsg): Promise<boolean> {
  if (!/^[0-9a-f-]{36}$/i.test(result.requestId)) return false;
  const n = await ctx.db.quotaResetRequest.updateMany({
    where: { id: result.requestId, hostId, status: "pending" },
    data: {
      status: result.ok ? "done" : "failed",
      error: result.ok ? null : result.error || "agent reported failure",
      finishedAt: new Date(),
    },
  });
  return n.count === 1;
}

/** Requests not answered yet, oldest first: to send when the host's agent (re)connects. */
export async function pendingQuotaResets(ctx: { db: Db }, hostId: string): Promise<QuotaResetMessage[]> {
  const rows = await ctx.db.quotaResetRequest.findMany({
    where: { hostId, status: "pending" },
    orderBy: { requestedAt: "asc" },
    take: 100,
  });
  return rows.map((r) => ({ type: "quota_reset", requestId: r.id, name: r.name }));
}
