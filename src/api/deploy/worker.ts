// The rollout worker: a BullMQ Worker on every replica. A replica that dies mid-rollout
// stops renewing the job's lock; BullMQ's stalled-job check on a live replica puts the job
// back and it runs again from what Postgres says (see rollout.ts).
import { Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";
import type { Log } from "../log.ts";
import type { BackgroundService } from "../background-service.ts";
import {
  bullConnection,
  createRolloutQueue,
  enqueueRollout,
  QUEUE_NAME,
  type QueueSettings,
  type RolloutJob,
} from "./queue.ts";
import { loadConfig } from "../config.ts";
import { runRollout, type RolloutDeps } from "./rollout.ts";

export interface DeployWorkerOptions extends Partial<QueueSettings> {
  concurrency?: number;
  /** How often deployments whose job never made it to Redis are enqueued again (ms). */
  sweepIntervalMs?: number;
  pollMs?: number;
}

export interface RunningDeployWorker {
  stop(): Promise<void>;
}

export async function startDeployWorker(
  deps: { db: Db; redis: Redis; log: Log },
  opts: DeployWorkerOptions = {},
): Promise<RunningDeployWorker> {
  // Callers that name no settings (tests, the worker process) get the configured ones.
  const configured = opts.prefix !== undefined && opts.lockMs !== undefined ? undefined : loadConfig().queue;
  const settings: QueueSettings = {
    prefix: opts.prefix ?? configured!.prefix,
    lockMs: opts.lockMs ?? configured!.lockMs,
  };
  const rolloutDeps: RolloutDeps = { ...deps, ...(opts.pollMs ? { pollMs: opts.pollMs } : {}) };
  const worker = new Worker<RolloutJob>(QUEUE_NAME, async (job) => runRollout(rolloutDeps, job.data.deploymentId), {
    connection: bullConnection(deps.redis),
    prefix: settings.prefix,
    concurrency: opts.concurrency ?? 8,
    lockDuration: settings.lockMs,
    stalledInterval: Math.max(1_000, Math.floor(settings.lockMs / 2)),
    // A rollout may outlive several replicas; only give up on one that keeps killing them.
    maxStalledCount: 10,
  });
  worker.on("failed", (job, err) =>
    deps.log.error({ deploymentId: job?.data.deploymentId, err: err.message }, "rollout job failed"),
  );
  worker.on("stalled", (jobId) =>
    deps.log.warn({ deploymentId: jobId }, "rollout stalled (its replica stopped); resuming here"),
  );
  worker.on("error", (err) => deps.log.warn({ err: err.message }, "deploy worker error"));

  const queue = createRolloutQueue(deps.redis, settings);
  // Deployments whose enqueue failed (Redis down at the time) or whose jobs were lost.
  const sweep = async (all: boolean) => {
    const rows = await deps.db.deployment.findMany({
      where: all
        ? { status: { in: ["pending", "running"] } }
        : { status: "pending", createdAt: { lt: new Date(Date.now() - 5_000) } },
      select: { id: true },
      take: 1000,
    });
    for (const r of rows) await enqueueRollout(queue, r.id);
  };
  await sweep(true).catch((err: Error) => deps.log.warn({ err: err.message }, "deploy sweep failed"));
  const timer = setInterval(
    () => void sweep(false).catch((err: Error) => deps.log.warn({ err: err.message }, "deploy sweep failed")),
    opts.sweepIntervalMs ?? 30_000,
  );
  timer.unref();
  // Redis came back (maybe empty, its jobs lost): every unfinished rollout is queued again at
  // once (job id = deployment id, so the ones still there are not doubled).
  const onReconnect = () => {
    deps.log.info({}, "Redis is back: queueing unfinished rollouts again");
    void sweep(true).catch((err: Error) => deps.log.warn({ err: err.message }, "deploy sweep failed"));
  };
  deps.redis.on("ready", onReconnect);
  queue.on("error", () => {}); // reconnects by itself; the worker's handler below logs
  await worker.waitUntilReady();
  deps.log.info({ prefix: settings.prefix, pid: process.pid }, "deploy worker ready");
  return {
    async stop() {
      clearInterval(timer);
      deps.redis.off("ready", onReconnect);
      // Don't wait for running rollouts (they can take as long as their slowest batch):
      // their locks lapse and another replica resumes them from Postgres.
      await worker.close(true);
      await queue.close();
    },
  };
}

/** Registered in ../services.ts: every replica runs rollouts. */
export const deployWorkerService: BackgroundService = {
  name: "deploy-worker",
  async start({ config, db, redis, log }) {
    return startDeployWorker({ db, redis, log }, config.queue);
  },
};
