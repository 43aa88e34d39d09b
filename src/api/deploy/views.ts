// How deployments look over REST: overall status, per-status counts (for progress lines)
// and, for one deployment, every target with its host, version and error text.
import { z } from "zod";
import { type Db, Prisma } from "../db/client.ts";
import { iso, isoOrNull, Timestamp } from "../schemas.ts";
import { storedStrategy, Strategy } from "./strategy.ts";

const VersionRef = z.object({ ruleset: z.string(), version: z.number().int() });
const STATUSES = ["pending", "applying", "applied", "failed", "rolled_back"] as const;
export const Counts = z.object({
  total: z.number().int(),
  pending: z.number().int(),
  applying: z.number().int(),
  applied: z.number().int(),
  failed: z.number().int(),
  rolled_back: z.number().int(),
});
export type Counts = z.infer<typeof Counts>;

export const DeploymentSummary = z.object({
  id: z.uuid(),
  ruleset: z.string(),
  version: z.number().int(),
  status: z.enum(["pending", "running", "succeeded", "failed", "halted", "rolled_back"]),
  selector: z.unknown(),
  strategy: Strategy,
  createdBy: z.string(),
  rollbackOf: z.uuid().nullable(),
  counts: Counts,
  createdAt: Timestamp,
  updatedAt: Timestamp,
  finishedAt: Timestamp.nullable(),
});
export const Target = z.object({
  id: z.uuid(),
  hostId: z.uuid(),
  host: z.string(),
  batch: z.number().int(),
  status: z.enum(STATUSES),
  error: z.string().nullable(),
  version: VersionRef,
  previousVersion: VersionRef.nullable(),
  attempts: z.number().int(),
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
});
export const DeploymentDetail = DeploymentSummary.extend({ targets: z.array(Target) });

const versionRef = { select: { id: true, number: true, ruleset: { select: { name: true } } } } as const;
export const summaryInclude = { version: versionRef } as const;
type SummaryRow = Prisma.DeploymentGetPayload<{ include: typeof summaryInclude }>;

export async function countsFor(db: ViewDb, ids: string[]): Promise<Map<string, Counts>> {
  const out = new Map<string, Counts>(
    ids.map((id) => [id, { total: 0, pending: 0, applying: 0, applied: 0, failed: 0, rolled_back: 0 }]),
  );
  if (!ids.length) return out;
  const groups = await db.deploymentTarget.groupBy({
    by: ["deploymentId", "status"],
    where: { deploymentId: { in: ids } },
    _count: { _all: true },
  });
  for (const g of groups) {
    const c = out.get(g.deploymentId)!;
    c[g.status] += g._count._all;
    c.total += g._count._all;
  }
  return out;
}

export function summaryView(d: SummaryRow, counts: Counts): z.infer<typeof DeploymentSummary> {
  return {
    id: d.id,
    ruleset: d.version.ruleset.name,
    version: d.version.number,
    status: d.status,
    selector: d.selector,
    strategy: storedStrategy(d.strategy),
    createdBy: d.createdBy,
    rollbackOf: d.rollbackOfId,
    counts,
    createdAt: iso(d.createdAt),
    updatedAt: iso(d.updatedAt),
    finishedAt: isoOrNull(d.finishedAt),
  };
}

/**
 * Run a view's reads in one REPEATABLE READ snapshot. A deployment's status and its
 * targets change together (a failed target settles its deployment in the same
 * transaction); read one after the other, a commit landing in between shows a
 * rolled-back target under a deployment still "running".
 */
export function inSnapshot<T>(db: Db, read: (tx: ViewDb) => Promise<T>): Promise<T> {
  return db.$transaction(read, { isolationLevel: Prisma.TransactionIsolationLevel.RepeatableRead });
}
export type ViewDb = Prisma.TransactionClient;

export async function detailView(db: ViewDb, d: SummaryRow): Promise<z.infer<typeof DeploymentDetail>> {
  const targets = await db.deploymentTarget.findMany({
    where: { deploymentId: d.id },
    include: { host: { select: { name: true } }, version: versionRef },
    orderBy: [{ batch: "asc" }, { host: { name: "asc" } }],
  });
  const prevIds = [...new Set(targets.map((t) => t.previousVersionId).filter((x): x is string => !!x))];
  const prev = new Map(
    (
      await db.rulesetVersion.findMany({
        where: { id: { in: prevIds } },
        select: { id: true, number: true, ruleset: { select: { name: true } } },
      })
    ).map((v) => [v.id, { ruleset: v.ruleset.name, version: v.number }]),
  );
  const counts = (await countsFor(db, [d.id])).get(d.id)!;
  return {
    ...summaryView(d, counts),
    targets: targets.map((t) => ({
      id: t.id,
      hostId: t.hostId,
      host: t.host.name,
      batch: t.batch,
      status: t.status,
      error: t.error,
      version: { ruleset: t.version.ruleset.name, version: t.version.number },
      previousVersion: t.previousVersionId ? (prev.get(t.previousVersionId) ?? null) : null,
      attempts: t.attempts,
      startedAt: isoOrNull(t.startedAt),
      finishedAt: isoOrNull(t.finishedAt),
    })),
  };
}
