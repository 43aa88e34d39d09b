// Creating deployments: a new one from a selector, and a rollback of an existing one.
// The rows (deployment, every target with its batch, the audit record) commit together;
// the rollout job is enqueued afterwards and re-enqueued by the worker's sweep if that fails.
import type { Queue } from "bullmq";
import type { Actor } from "../audit.ts";
import { recordAudit } from "../audit.ts";
import type { Db, Prisma } from "../db/client.ts";
import { conflict, notFound } from "../errors.ts";
import type { Log } from "../grpc/context.ts";
import { enqueueRollout, type RolloutJob } from "./queue.ts";
import { resolveSelector } from "./selector.ts";
import { batchOf, storedStrategy, type Selector, type Strategy } from "./strategy.ts";

export interface DeployDeps {
  db: Db;
  queue: Queue<RolloutJob>;
  log: Log;
}

export interface NewDeployment {
  ruleset: string;
  version: number;
  selector: Selector;
  strategy: Strategy;
}

interface TargetSeed {
  hostId: string;
  versionId: string;
  previousVersionId: string | null;
}

async function insert(
  deps: DeployDeps,
  actor: Actor,
  d: { versionId: string; selector: Selector; strategy: Strategy; rollbackOfId?: string },
  targets: TargetSeed[],
  audit: { action: string; details: Prisma.InputJsonValue },
): Promise<string> {
  const id = await deps.db.$transaction(async (tx) => {
    const dep = await tx.deployment.create({
      data: {
        versionId: d.versionId,
        selector: d.selector as Prisma.InputJsonValue,
        strategy: d.strategy as unknown as Prisma.InputJsonValue,
        createdBy: actor.name,
        rollbackOfId: d.rollbackOfId ?? null,
      },
    });
    await tx.deploymentTarget.createMany({
      data: targets.map((t, i) => ({ deploymentId: dep.id, hostId: t.hostId, versionId: t.versionId, previousVersionId: t.previousVersionId, batch: batchOf(i, d.strategy) })),
    });
    if (d.rollbackOfId) {
      // The undone deployment stops where it is (its worker checks its status per batch).
      await tx.deployment.updateMany({ where: { id: d.rollbackOfId }, data: { status: "rolled_back", finishedAt: new Date(), updatedAt: new Date() } });
    }
    await recordAudit(tx, actor, audit.action, `deployment:${dep.id}`, audit.details);
    return dep.id;
  });
  await enqueueRollout(deps.queue, id).catch((err: Error) => deps.log.error({ err: err.message, deploymentId: id }, "could not enqueue rollout; the worker sweep will"));
  return id;
}

export async function createDeployment(deps: DeployDeps, actor: Actor, req: NewDeployment): Promise<{ id: string; targets: number }> {
  const version = await deps.db.rulesetVersion.findFirst({ where: { number: req.version, ruleset: { name: req.ruleset } }, select: { id: true } });
  if (!version) {
    const exists = await deps.db.ruleset.count({ where: { name: req.ruleset } });
    throw notFound(exists ? `version ${req.version} of ruleset "${req.ruleset}"` : `ruleset "${req.ruleset}"`);
  }
  const hosts = await resolveSelector(deps.db, req.selector);
  const id = await insert(
    deps,
    actor,
    { versionId: version.id, selector: req.selector, strategy: req.strategy },
    hosts.map((h) => ({ hostId: h.id, versionId: version.id, previousVersionId: h.appliedVersionId })),
    { action: "deployment.create", details: { ruleset: req.ruleset, version: req.version, hosts: hosts.map((h) => h.name), strategy: req.strategy as unknown as Prisma.InputJsonValue } },
  );
  return { id, targets: hosts.length };
}

/**
 * Put back what each target ran before: a new deployment whose targets carry their own
 * previous version. Targets that ran nothing before have nothing to go back to; they are
 * listed as skipped (Palisade never deletes a host's rules by itself).
 */
export async function createRollback(deps: DeployDeps, actor: Actor, deploymentId: string): Promise<{ id: string; targets: number; skipped: string[] }> {
  const orig = await deps.db.deployment.findUnique({
    where: { id: deploymentId },
    include: { targets: { include: { host: { select: { name: true, appliedVersionId: true } } }, orderBy: [{ batch: "asc" }] } },
  });
  if (!orig) throw notFound(`deployment ${deploymentId}`);
  if (orig.status === "rolled_back") throw conflict(`deployment ${deploymentId} was already rolled back`);
  const withPrevious = orig.targets.filter((t) => t.previousVersionId);
  const skipped = orig.targets.filter((t) => !t.previousVersionId).map((t) => t.host.name);
  if (withPrevious.length === 0) throw conflict(`no target of deployment ${deploymentId} ran a version before it; nothing to roll back to`);
  // The deployment row names one version: the one most targets go back to.
  const tally = new Map<string, number>();
  for (const t of withPrevious) tally.set(t.previousVersionId!, (tally.get(t.previousVersionId!) ?? 0) + 1);
  const main = [...tally.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  const strategy = storedStrategy(orig.strategy);
  const id = await insert(
    deps,
    actor,
    { versionId: main, selector: { hosts: withPrevious.map((t) => t.hostId) }, strategy, rollbackOfId: orig.id },
    withPrevious.map((t) => ({ hostId: t.hostId, versionId: t.previousVersionId!, previousVersionId: t.host.appliedVersionId })),
    { action: "deployment.rollback", details: { of: orig.id, hosts: withPrevious.map((t) => t.host.name), skipped } },
  );
  return { id, targets: withPrevious.length, skipped };
}
