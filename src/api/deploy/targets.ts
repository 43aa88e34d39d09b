// Deployment targets in the database: the one place their status changes. Every change is
// a conditional UPDATE on the current status, so the rollout worker, the replica holding a
// host's stream and a replica resuming a dead one's rollout can race without a target
// being sent twice or a late report undoing a newer one.
import type { Db, Prisma } from "../db/client.ts";
import type { Log } from "../log.ts";

/** An agent's result for one target, as the stream handler validated it (the domain's own shape). */
export interface ApplyResult {
  deploymentId: string;
  targetId: string;
  version?: { ruleset: string; version: number; checksum: string } | null;
  status:
    | "APPLY_STATUS_UNSPECIFIED"
    | "APPLY_STATUS_APPLYING"
    | "APPLY_STATUS_APPLIED"
    | "APPLY_STATUS_FAILED"
    | "APPLY_STATUS_ROLLED_BACK";
  error: string;
  /** The DesiredState.attempt it answers; 0 (or absent) from agents that predate attempts. */
  attempt?: number;
}

export const TERMINAL = ["applied", "failed", "rolled_back"] as const;
export type TargetStatus = "pending" | "applying" | "applied" | "failed" | "rolled_back";

export interface ClaimedTarget {
  targetId: string;
  deploymentId: string;
  versionId: string;
  strategy: Prisma.JsonValue;
  /** This send's number (1 for the first, more after retries): DesiredState.attempt. */
  attempt: number;
}

/**
 * pending -> applying for one offered target of a running deployment, on its own host.
 * Returns what to send, or null when someone else claimed it first (or it is not sendable).
 */
export async function claimTarget(db: Db, targetId: string, hostId: string): Promise<ClaimedTarget | null> {
  const rows = await db.$queryRaw<
    { id: string; deployment_id: string; version_id: string; strategy: Prisma.JsonValue; attempts: number }[]
  >`
    UPDATE deployment_targets t
       SET status = 'applying', started_at = now(), attempts = t.attempts + 1, error = NULL, updated_at = now()
      FROM deployments d
     WHERE t.id = ${targetId}::uuid AND t.host_id = ${hostId}::uuid AND t.status = 'pending'
       AND t.offered_at IS NOT NULL AND d.id = t.deployment_id AND d.status = 'running'
    RETURNING t.id, t.deployment_id, t.version_id, d.strategy, t.attempts`;
  const r = rows[0];
  return r
    ? {
        targetId: r.id,
        deploymentId: r.deployment_id,
        versionId: r.version_id,
        strategy: r.strategy,
        attempt: r.attempts,
      }
    : null;
}

/**
 * On an agent's hello: the newest offered, unsent target of a running deployment is claimed
 * for sending; older unsent ones for the same host are superseded (the newest deployment
 * decides what the host runs, and sending every version in turn would only churn the kernel).
 */
export async function claimForHost(db: Db, hostId: string): Promise<ClaimedTarget | null> {
  const rows = await db.$queryRaw<{ id: string; deployment_id: string }[]>`
    SELECT t.id, t.deployment_id FROM deployment_targets t JOIN deployments d ON d.id = t.deployment_id
     WHERE t.host_id = ${hostId}::uuid AND t.status = 'pending' AND t.offered_at IS NOT NULL AND d.status = 'running'
     ORDER BY d.created_at DESC, d.id DESC`;
  const [newest, ...older] = rows;
  if (!newest) return null;
  if (older.length) {
    await db.deploymentTarget.updateMany({
      where: { id: { in: older.map((r) => r.id) }, status: "pending" },
      data: {
        status: "failed",
        error: `superseded by deployment ${newest.deployment_id}`,
        finishedAt: new Date(),
        updatedAt: new Date(),
      },
    });
    for (const d of new Set(older.map((r) => r.deployment_id))) await settleDeployment(db, d);
  }
  return claimTarget(db, newest.id, hostId);
}

/**
 * Hello says the kernel holds, unconfirmed, the version a sent target carries: the agent
 * applied it and lost the stream before its Confirm arrived. The reconnect is the contact
 * commit-confirm waits for, so the caller confirms those targets. They stay `applying`:
 * only the agent's APPLIED after it recorded the commit makes them applied (an agent that
 * dies before recording rolls back at its next start and reports ROLLED_BACK).
 */
export async function applyingWithVersion(
  db: Db,
  hostId: string,
  versionId: string,
): Promise<{ targetId: string; deploymentId: string }[]> {
  const rows = await db.deploymentTarget.findMany({
    where: { hostId, status: "applying", versionId },
    select: { id: true, deploymentId: true },
  });
  return rows.map((r) => ({ targetId: r.id, deploymentId: r.deploymentId }));
}

export type ResultOutcome =
  | {
      kind: "recorded";
      status: TargetStatus;
      deploymentId: string;
      confirm: boolean;
      /** Every target of the deployment is final: the caller settles it (settleAfterResult) after its Confirm. */
      settle?: boolean;
    }
  | { kind: "ignored"; reason: string }
  | { kind: "foreign" };

/**
 * Which statuses a reported status may replace. A final target (applied, failed,
 * rolled_back) never changes again: "applied" is only reported after the agent recorded
 * the commit, so nothing the agent says later can be about that apply, and a result that
 * arrives after the target failed (timed out, superseded) is stale.
 */
const FROM: Record<string, TargetStatus[]> = {
  APPLY_STATUS_APPLIED: ["pending", "applying"],
  APPLY_STATUS_FAILED: ["pending", "applying"],
  APPLY_STATUS_ROLLED_BACK: ["pending", "applying"],
};
const TO: Record<string, TargetStatus> = {
  APPLY_STATUS_APPLYING: "applying",
  APPLY_STATUS_APPLIED: "applied",
  APPLY_STATUS_FAILED: "failed",
  APPLY_STATUS_ROLLED_BACK: "rolled_back",
};

/** An agent's ApplyResult, already validated; `hostId` comes from its credential. */
export async function recordResult(db: Db, hostId: string, r: ApplyResult): Promise<ResultOutcome> {
  if (!r.targetId) return { kind: "ignored", reason: "no target id (not a deployment's apply)" };
  const to = TO[r.status];
  if (!to) return { kind: "ignored", reason: `status ${r.status}` };
  const target = await db.deploymentTarget.findUnique({
    where: { id: r.targetId },
    select: {
      id: true,
      hostId: true,
      deploymentId: true,
      versionId: true,
      previousVersionId: true,
      status: true,
      attempts: true,
    },
  });
  if (!target) return { kind: "ignored", reason: "unknown target (deployment deleted?)" };
  // The credential decides the host; a target of any other host is a forged claim.
  if (target.hostId !== hostId || (r.deploymentId && r.deploymentId !== target.deploymentId))
    return { kind: "foreign" };
  // A result of an earlier send (it timed out and the target was sent again) says nothing
  // about the apply now in flight: a late FAILED must not fail a retry that may succeed.
  if (r.attempt && r.attempt !== target.attempts)
    return { kind: "ignored", reason: `result of attempt ${r.attempt}; the target is on attempt ${target.attempts}` };

  // APPLYING: the kernel holds the version, waiting for our Confirm. Only a target that is
  // still being applied is confirmed; a final one (timed out, superseded) is not, so the
  // agent's window runs out and it puts its previous rules back.
  if (to === "applying") {
    return target.status === "applying"
      ? { kind: "recorded", status: "applying", deploymentId: target.deploymentId, confirm: true }
      : { kind: "ignored", reason: `target is ${target.status}; not confirmed` };
  }
  const now = new Date();
  const error =
    to === "failed" || to === "rolled_back"
      ? r.error || (to === "failed" ? "agent reported failure without a message" : "agent rolled back")
      : null;
  const changed =
    to === "applied"
      ? await markApplied(db, target.id, hostId)
      : await db.$transaction(async (tx) => {
          const u = await tx.deploymentTarget.updateMany({
            where: { id: target.id, status: { in: FROM[r.status] } },
            data: { status: to, error, updatedAt: now, finishedAt: now },
          });
          if (u.count === 0) return false;
          if (to === "rolled_back") {
            // The agent put back what it ran before; a Hello that reported the version while it
            // waited for the Confirm set it as the host's applied version, which is no longer true.
            await tx.host.updateMany({
              where: { id: hostId, appliedVersionId: target.versionId },
              data: { appliedVersionId: target.previousVersionId, updatedAt: now },
            });
          }
          // A failure settles in the same transaction: nobody sees a failed target under a
          // deployment that still says succeeded. (Successes settle after commit, see below.)
          if (to === "failed" || to === "rolled_back") await settleInTx(tx, target.deploymentId);
          return true;
        });
  if (!changed) {
    // A repeated "applied" still deserves its Confirm: the first one may have been lost.
    const again = to === "applied" && target.status === "applied";
    return again
      ? { kind: "recorded", status: "applied", deploymentId: target.deploymentId, confirm: true }
      : { kind: "ignored", reason: `target is ${target.status}` };
  }
  if (to === "applied") {
    // Locking the deployment row for every success would serialise a 500-host fan-out;
    // count after commit instead: of results landing together, the last to commit sees
    // all the others and settles. Settling is left to the caller, after the Confirm: the
    // result is committed, and the Confirm must not wait on (or be lost to) the lock.
    const open = await db.deploymentTarget.count({
      where: { deploymentId: target.deploymentId, status: { in: ["pending", "applying"] } },
    });
    return { kind: "recorded", status: to, deploymentId: target.deploymentId, confirm: true, settle: open === 0 };
  }
  return { kind: "recorded", status: to, deploymentId: target.deploymentId, confirm: false };
}

/**
 * Settle after a committed "applied" whose count saw no open target. Many results of one
 * fan-out land together and may all see none open; their settles queue on the deployment
 * row, each holding a pooled connection, and under load some wait past Prisma's
 * transaction maxWait (P2028). Such a failure is logged, never thrown: the result is
 * committed, the rollout settles the deployment when its batch ends, and ending the
 * agent's stream for it would lose the Confirm (a 500-agent bench lost 288 streams so).
 */
export async function settleAfterResult(db: Db, deploymentId: string, log: Log): Promise<void> {
  try {
    // Already succeeded (settled by another result): an "applied" cannot change that, and
    // the lock need not be queued on. A failure settles inside its own transaction.
    if ((await db.deployment.count({ where: { id: deploymentId, status: "succeeded" } })) > 0) return;
    await settleDeployment(db, deploymentId);
  } catch (e) {
    const err = e as Error & { code?: string };
    log.warn(
      { deploymentId, code: err.code, err: err.message },
      "deployment not settled after a result; its rollout settles it",
    );
  }
}

/**
 * The common case of a fan-out, in one statement (one round trip, its own transaction):
 * the target becomes applied and its host's applied version follows.
 */
async function markApplied(db: Db, targetId: string, hostId: string): Promise<boolean> {
  const rows = await db.$queryRaw<{ id: string }[]>`
    WITH t AS (
      UPDATE deployment_targets SET status = 'applied', error = NULL, finished_at = now(), updated_at = now()
       WHERE id = ${targetId}::uuid AND host_id = ${hostId}::uuid AND status IN ('pending', 'applying')
      RETURNING id, version_id
    ), h AS (
      UPDATE hosts SET applied_version_id = t.version_id, updated_at = now() FROM t WHERE hosts.id = ${hostId}::uuid RETURNING hosts.id
    )
    SELECT t.id FROM t LEFT JOIN h ON true`;
  return rows.length > 0;
}

/**
 * A running deployment whose every target is final becomes succeeded (all applied) or
 * failed. Targets not yet sent (later batches, offline hosts) keep it running. A finished
 * one is recomputed too (a target failed by the worker or superseded after the others
 * settled). The deployment row is locked
 * before counting, so two settles (the worker's and a result's) cannot cross each other
 * with stale counts.
 */
export async function settleDeployment(db: Db, deploymentId: string): Promise<void> {
  await db.$transaction((tx) => settleInTx(tx, deploymentId));
}

/** settleDeployment inside the caller's transaction. */
export async function settleInTx(db: Prisma.TransactionClient, deploymentId: string): Promise<void> {
  const [d] = await db.$queryRaw<
    { status: string }[]
  >`SELECT status::text AS status FROM deployments WHERE id = ${deploymentId}::uuid FOR UPDATE`;
  if (!d || !["running", "succeeded", "failed"].includes(d.status)) return;
  const groups = await db.deploymentTarget.groupBy({ by: ["status"], where: { deploymentId }, _count: { _all: true } });
  let open = 0;
  let bad = 0;
  for (const g of groups) {
    if (g.status === "pending" || g.status === "applying") open += g._count._all;
    if (g.status === "failed" || g.status === "rolled_back") bad += g._count._all;
  }
  const next = bad > 0 ? "failed" : "succeeded";
  if (open > 0 || d.status === next) return;
  const now = new Date();
  await db.deployment.update({ where: { id: deploymentId }, data: { status: next, finishedAt: now, updatedAt: now } });
}
