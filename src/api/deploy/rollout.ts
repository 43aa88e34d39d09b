// One deployment's rollout, batch by batch. It keeps no state of its own: every step reads
// and writes the targets in Postgres with conditional updates, so when the replica running
// it dies, another one (BullMQ hands it the stalled job) continues from the same rows.
// Targets already sent are waited for, never re-sent; targets already final are skipped.
//
// Sending is indirect: the rollout publishes an "offer" on the host's channel and the
// replica holding that host's stream claims the target (pending -> applying) and sends it.
// No listener means the host is offline right now: its target stays pending (and its
// host's desired version is set), and the agent's next hello claims it.
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";
import { publishToHost } from "../host-bus.ts";
import type { Log } from "../log.ts";
import { resultTimeoutMs, storedStrategy, type Strategy } from "./strategy.ts";
import { settleDeployment } from "./targets.ts";

export interface RolloutDeps {
  db: Db;
  redis: Redis;
  log: Log;
  /** How often a batch's targets are re-read while waiting (ms). */
  pollMs?: number;
  /** An offer that found a listener but was not claimed in this long is offered again (ms). */
  reofferMs?: number;
}

/** Offers with listeners that never led to a claim before the host counts as offline. */
const MAX_OFFERS = 3;

export async function runRollout(deps: RolloutDeps, deploymentId: string): Promise<void> {
  const { db, log } = deps;
  const d = await db.deployment.findUnique({ where: { id: deploymentId }, select: { status: true, strategy: true } });
  if (!d) return log.warn({ deploymentId }, "rollout for a deployment that no longer exists");
  if (d.status === "pending") {
    await db.deployment.updateMany({
      where: { id: deploymentId, status: "pending" },
      data: { status: "running", updatedAt: new Date() },
    });
  } else if (d.status !== "running") {
    return log.info({ deploymentId, status: d.status }, "rollout has nothing to do");
  }
  const resumed = (await db.deploymentTarget.count({ where: { deploymentId, offeredAt: { not: null } } })) > 0;
  log.info({ deploymentId, pid: process.pid, resumed }, resumed ? "rollout resumed" : "rollout started");
  const strategy = storedStrategy(d.strategy);
  const batches = (
    await db.deploymentTarget.findMany({
      where: { deploymentId },
      distinct: ["batch"],
      select: { batch: true },
      orderBy: { batch: "asc" },
    })
  ).map((b) => b.batch);

  for (const batch of batches) {
    if (!(await stillRunning(db, deploymentId)))
      return log.info({ deploymentId }, "rollout stopped: deployment no longer running");
    await runBatch(deps, deploymentId, batch, strategy);
    const failures = await db.deploymentTarget.count({
      where: { deploymentId, batch: { lte: batch }, status: { in: ["failed", "rolled_back"] } },
    });
    const canary = strategy.canary > 0 && batch === 0;
    if (failures > 0 && (strategy.haltOnFailure || canary)) {
      const now = new Date();
      await db.deployment.updateMany({
        where: { id: deploymentId, status: "running" },
        data: { status: "halted", finishedAt: now, updatedAt: now },
      });
      return log.warn({ deploymentId, batch, failures, canary }, "rollout halted after a failure");
    }
    log.info({ deploymentId, batch }, "batch done");
  }
  await settleDeployment(db, deploymentId);
  log.info({ deploymentId }, "rollout finished");
}

async function stillRunning(db: Db, deploymentId: string): Promise<boolean> {
  return (await db.deployment.count({ where: { id: deploymentId, status: "running" } })) > 0;
}

async function runBatch(deps: RolloutDeps, deploymentId: string, batch: number, strategy: Strategy): Promise<void> {
  const { db, redis, log } = deps;
  const pollMs = deps.pollMs ?? 250;
  const reofferMs = deps.reofferMs ?? 5_000;
  const timeoutMs = resultTimeoutMs(strategy);
  // Open the batch: its targets become claimable and their hosts' desired version is set,
  // which is what a host that is offline now will get when it says hello.
  await db.$transaction([
    db.$executeRaw`UPDATE deployment_targets SET offered_at = now(), updated_at = now()
                    WHERE deployment_id = ${deploymentId}::uuid AND batch = ${batch} AND offered_at IS NULL`,
    db.$executeRaw`UPDATE hosts h SET desired_version_id = t.version_id, updated_at = now()
                     FROM deployment_targets t
                    WHERE t.deployment_id = ${deploymentId}::uuid AND t.batch = ${batch} AND h.id = t.host_id
                      AND t.status IN ('pending', 'applying')`,
  ]);

  const offers = new Map<string, { at: number; count: number }>();
  const offline = new Set<string>();
  for (;;) {
    if (!(await stillRunning(db, deploymentId))) return;
    const rows = await db.deploymentTarget.findMany({
      where: { deploymentId, batch, status: { in: ["pending", "applying"] } },
      select: { id: true, hostId: true, status: true, startedAt: true, attempts: true },
    });
    const now = Date.now();
    let waiting = false;
    const toOffer: typeof rows = [];
    for (const t of rows) {
      if (t.status === "pending") {
        if (offline.has(t.id)) continue;
        const last = offers.get(t.id);
        if (last && now - last.at < reofferMs) {
          waiting = true;
        } else if (last && last.count >= MAX_OFFERS) {
          offline.add(t.id);
          log.warn(
            { deploymentId, targetId: t.id },
            "host's replica never claimed the offer; it gets the version on reconnect",
          );
        } else {
          toOffer.push(t);
        }
        continue;
      }
      // applying: sent (by whichever replica) and not answered yet.
      const started = t.startedAt?.getTime() ?? now;
      if (now - started < timeoutMs) {
        waiting = true;
        continue;
      }
      const seconds = Math.round(timeoutMs / 1000);
      if (t.attempts <= strategy.retries) {
        const u = await db.deploymentTarget.updateMany({
          where: { id: t.id, status: "applying" },
          data: { status: "pending", error: `no result within ${seconds}s; sending again`, updatedAt: new Date() },
        });
        if (u.count) log.warn({ deploymentId, targetId: t.id, attempts: t.attempts }, "no result in time; retrying");
        offers.delete(t.id);
        waiting = true;
      } else {
        await db.deploymentTarget.updateMany({
          where: { id: t.id, status: "applying" },
          data: {
            status: "failed",
            error: `no result from the agent within ${seconds}s (after ${t.attempts} attempts)`,
            finishedAt: new Date(),
            updatedAt: new Date(),
          },
        });
        log.warn({ deploymentId, targetId: t.id }, "no result in time; target failed");
      }
    }
    // All offers of a round go out together (ioredis pipelines concurrent commands).
    const listeners = await Promise.all(
      toOffer.map((t) => publishToHost(redis, t.hostId, { type: "offer", targetId: t.id })),
    );
    toOffer.forEach((t, i) => {
      offers.set(t.id, { at: now, count: (offers.get(t.id)?.count ?? 0) + 1 });
      if (listeners[i] === 0) {
        offline.add(t.id);
        log.info(
          { deploymentId, targetId: t.id, hostId: t.hostId },
          "host offline; it gets the version when it reconnects",
        );
      } else waiting = true;
    });
    if (!waiting) return;
    await sleep(pollMs);
  }
}
