// The rollout queue on BullMQ. One job per deployment (job id = deployment id, so
// enqueueing twice is harmless); the job holds no progress of its own, all of it lives
// in Postgres, which is what lets any replica pick a stalled rollout up and finish it.
import { Queue, type ConnectionOptions } from "bullmq";
import type { Redis } from "ioredis";
import type { QueueSettings } from "../config.ts";

export const QUEUE_NAME = "deploy";
export const JOB_NAME = "rollout";

export interface RolloutJob {
  deploymentId: string;
}

export type { QueueSettings } from "../config.ts";

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
