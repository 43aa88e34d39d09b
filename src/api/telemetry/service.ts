// The telemetry BackgroundService (src/api/services.ts): a BullMQ queue with three
// repeatable jobs, processed by one worker per replica (BullMQ hands each job to one
// worker, and rollups.ts/partitions.ts take advisory locks besides):
//   rollup       every 15 s: recompute dirty minutes -> hours -> days (rollups.ts)
//   reconcile    every hour: recompute the last hours of every rollup and repair drift (reconcile.ts)
//   maintenance  every hour, and once at start: create daily partitions ahead, apply
//                retention (partitions.ts), delete expired ban rows (bans/store.ts: they are
//                invisible at once, this reclaims their space)
// The schedules live in Redis. When Redis comes back after an outage (perhaps empty: a
// restart without persistence loses them) they are upserted again on reconnect, so
// rollups and retention resume without a restart of the server.
import { Queue, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { sweepExpiredBans } from "../bans/index.ts";
import type { BackgroundService, RunningService, ServiceContext } from "../background-service.ts";
import { applyRetention, ensurePartitions } from "./partitions.ts";
import type { Retention } from "./retention.ts";
import { DEFAULT_RECONCILE_HOURS, reconcileRollups, repairedRows } from "./reconcile.ts";
import { rollupAll } from "./rollups.ts";

export interface TelemetryServiceOptions {
  queueName?: string;
  /** BullMQ key prefix (tests isolate themselves with it). */
  prefix?: string;
  rollupEveryMs?: number;
  maintenanceEveryMs?: number;
  reconcileEveryMs?: number;
  /** The window each reconcile run recomputes, in hours back from now. */
  reconcileHours?: number;
  retention?: Retention;
}

export const TELEMETRY_QUEUE = "palisade-telemetry";

export function telemetryService(opts: TelemetryServiceOptions = {}): BackgroundService {
  return {
    name: "telemetry",
    async start(ctx: ServiceContext): Promise<RunningService> {
      const retention = opts.retention ?? ctx.config.retention;
      const queueName = opts.queueName ?? TELEMETRY_QUEUE;
      const prefix = opts.prefix ?? ctx.config.queue.prefix;
      // BullMQ's blocking worker connection must retry forever (maxRetriesPerRequest: null).
      const qConn = new Redis(ctx.config.redisUrl, { maxRetriesPerRequest: null });
      const wConn = new Redis(ctx.config.redisUrl, { maxRetriesPerRequest: null });
      const queue = new Queue(queueName, { connection: qConn, prefix });
      const process = async (job: Job) => {
        if (job.name === "rollup") return rollupAll(ctx.db, retention, { maxRuns: 50 });
        if (job.name === "reconcile") {
          const r = await reconcileRollups(ctx.db, retention, {
            hours: opts.reconcileHours ?? DEFAULT_RECONCILE_HOURS,
          });
          // Drift should never happen; when it did, say where.
          if (repairedRows(r) > 0) ctx.log.warn({ repaired: r.repaired }, "accounting rollups had drifted; repaired");
          return r;
        }
        if (job.name === "maintenance") {
          const created = await ensurePartitions(ctx.db);
          const r = await applyRetention(ctx.db, retention);
          if (created.length || r.dropped.length)
            ctx.log.info({ created, dropped: r.dropped }, "telemetry partitions maintained");
          const bansSwept = await sweepExpiredBans(ctx.db);
          if (bansSwept) ctx.log.info({ bansSwept }, "expired ban rows deleted");
          return { created, ...r, bansSwept };
        }
        throw new Error(`unknown telemetry job ${job.name}`);
      };
      const worker = new Worker(queueName, process, { connection: wConn, prefix, concurrency: 1 });
      worker.on("failed", (job, err) => ctx.log.error({ err, job: job?.name }, "telemetry job failed"));
      // Both reconnect by themselves; without a listener an 'error' event would end the process.
      let down = false;
      const onError = (err: Error) => {
        if (!down)
          ctx.log.warn({ err: err.message }, "telemetry queue lost Redis; rollups and retention wait until it is back");
        down = true;
      };
      queue.on("error", onError);
      worker.on("error", onError);
      const schedule = async () => {
        await queue.upsertJobScheduler(
          "rollup",
          { every: opts.rollupEveryMs ?? 15_000 },
          { name: "rollup", opts: { removeOnComplete: 100, removeOnFail: 100 } },
        );
        await queue.upsertJobScheduler(
          "reconcile",
          { every: opts.reconcileEveryMs ?? 3_600_000 },
          { name: "reconcile", opts: { removeOnComplete: 20, removeOnFail: 50 } },
        );
        await queue.upsertJobScheduler(
          "maintenance",
          { every: opts.maintenanceEveryMs ?? 3_600_000 },
          { name: "maintenance", opts: { removeOnComplete: 20, removeOnFail: 50 } },
        );
      };
      await schedule();
      await queue.add("maintenance", {}, { removeOnComplete: 20, removeOnFail: 50 });
      // Every later 'ready' is a reconnect.
      const onReconnect = () => {
        down = false;
        void schedule().then(
          () => ctx.log.info("Redis is back: telemetry schedules (rollup, reconcile, maintenance) re-created"),
          (err: Error) =>
            ctx.log.error(
              { err: err.message },
              "could not re-create the telemetry schedules; they resume at the next start",
            ),
        );
      };
      qConn.on("ready", onReconnect);
      return {
        async stop() {
          qConn.off("ready", onReconnect);
          await worker.close();
          await queue.close();
          qConn.disconnect();
          wConn.disconnect();
        },
      };
    },
  };
}
