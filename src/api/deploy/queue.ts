// The rollout queue on BullMQ. One job per deployment (job id = deployment id, so
// enqueueing twice is harmless); the job holds no progress of its own, all of it lives
// in Postgres, which is what lets any replica pick a stalled rollout up and finish it.
import { Queue, type ConnectionOptions } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";

export const QUEUE_NAME = "deploy";
export const JOB_NAME = "rollout";

export interface RolloutJob {
  deploymentId: string;
}

const Env = z.object({
  /** Redis key prefix of the rollout queue (tests and side-by-side installs isolate themselves with it). */
  PALISADE_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/).default("palisade:bull"),
  /** A rollout whose replica stops renewing its lock is taken over after about this long. */
  PALISADE_DEPLOY_LOCK_MS: z.coerce.number().int().min(2_000).max(600_000).default(15_000),
});

export interface QueueSettings {
  prefix: string;
  lockMs: number;
}

export function queueSettings(env: NodeJS.ProcessEnv = process.env): QueueSettings {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const e = Env.parse(present);
  return { prefix: e.PALISADE_QUEUE_PREFIX, lockMs: e.PALISADE_DEPLOY_LOCK_MS };
}

/**
 * BullMQ wants its own connections (workers block on them) and closes what it opened:
 * hand it the app connection's settings, not the connection.
 */
export function bullConnection(redis: Redis): ConnectionOptions {
  const { host, port, path, db, username, password, tls } = redis.options;
  return { host, port, path, db, username, password, tls, maxRetriesPerRequest: null } as ConnectionOptions;
}

export function createRolloutQueue(redis: Redis, settings: QueueSettings): Queue<RolloutJob> {
  return new Queue<RolloutJob>(QUEUE_NAME, {
    connection: bullConnection(redis),
    prefix: settings.prefix,
    defaultJobOptions: {
      // A processor that throws (database blip) is retried; progress is in Postgres.
      attempts: 20,
      backoff: { type: "exponential", delay: 1_000 },
      removeOnComplete: { count: 1000 },
      removeOnFail: { count: 1000 },
    },
  });
}

export async function enqueueRollout(queue: Queue<RolloutJob>, deploymentId: string): Promise<void> {
  await queue.add(JOB_NAME, { deploymentId }, { jobId: deploymentId });
}
