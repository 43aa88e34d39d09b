// Creating deployments: a new one from a selector, and a rollback of an existing one.
// The rows (deployment, every target with its batch, the audit record) commit together;
// the rollout job is enqueued afterwards and re-enqueued by the worker's sweep if that fails
// (or is skipped because Redis is down: the answer never waits for Redis).
// An Idempotency-Key makes a retried create answer with the deployment of the first try.
import { createHash } from "node:crypto";
import type { Queue } from "bullmq";
import type { Actor } from "../audit.ts";
import { recordAudit } from "../audit.ts";
import type { Db, Prisma } from "../db/client.ts";
import {
  canonicalJson,
  geoip,
  KERNEL_FEATURES,
  type KernelFeatureName,
  kernelFeatureUses,
  type Policy,
} from "../../engine/index.ts";
import { countriesWithoutData, hostsWithoutGeoip, lockGeoData, type MissingCountryData } from "../geoip/index.ts";
import { ApiError, conflict, notFound } from "../errors.ts";
import { hostsLacking } from "../host-selection.ts";
import type { Log } from "../log.ts";
import { withinMs } from "../redis.ts";
import { enqueueRollout, type RolloutJob } from "./queue.ts";
import { resolveSelector } from "./selector.ts";
import { batchOf, storedStrategy, type Selector, type Strategy } from "./strategy.ts";

export interface DeployDeps {
  db: Db;
  queue: Queue<RolloutJob>;
  log: Log;
  /** False while Redis is down: the enqueue is left to the worker's sweep instead of waiting. */
  redisReady?: () => boolean;
}

/** The client's Idempotency-Key and what it was sent with. */
export interface IdempotencyKey {
  key: string;
  /** sha256 hex of the canonical request (requestFingerprint). */
  request: string;
}

export function requestFingerprint(request: unknown): string {
  return createHash("sha256").update(canonicalJson(request)).digest("hex");
}

/** How long an answer waits for the enqueue before leaving it to the sweep. */
const ENQUEUE_WAIT_MS = 2_000;

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
  idem: IdempotencyKey | undefined,
  response: (id: string) => Prisma.InputJsonObject,
  geo: { countries: ReadonlyMap<string, readonly geoip.GeoFamily[]>; capable?: string[] } = { countries: new Map() },
): Promise<string> {
  const id = await deps.db.$transaction(async (tx) => {
    if (geo.countries.size > 0) {
      // Under the data's lock: a load cannot empty a country between this check and the
      // commit (it waits, then sees this deployment's targets and is refused as in use).
      await lockGeoData(tx);
      await refuseWithoutGeoip(tx, geo.countries, geo.capable ?? []);
    }
    if (d.rollbackOfId) {
      // The undone deployment stops where it is (its worker checks its status per batch).
      // The status test is here, not only in newRollback's read: concurrent rollbacks all
      // pass that read; the row lock makes each later one see rolled_back and change
      // nothing, so it is refused before anything is written.
      const marked = await tx.deployment.updateMany({
        where: { id: d.rollbackOfId, status: { not: "rolled_back" } },
        data: { status: "rolled_back", finishedAt: new Date(), updatedAt: new Date() },
      });
      if (marked.count === 0) throw conflict(`deployment ${d.rollbackOfId} was already rolled back`);
    }
    const dep = await tx.deployment.create({
      data: {
        versionId: d.versionId,
        selector: d.selector as Prisma.InputJsonValue,
        strategy: d.strategy as unknown as Prisma.InputJsonValue,
        createdBy: actor.name,
        rollbackOfId: d.rollbackOfId ?? null,
        ...(idem && { idempotencyKey: idem.key, idempotencyRequest: idem.request }),
      },
    });
    if (idem) await tx.deployment.update({ where: { id: dep.id }, data: { idempotencyResponse: response(dep.id) } });
    await tx.deploymentTarget.createMany({
      data: targets.map((t, i) => ({
        deploymentId: dep.id,
        hostId: t.hostId,
        versionId: t.versionId,
        previousVersionId: t.previousVersionId,
        batch: batchOf(i, d.strategy),
      })),
    });
    await recordAudit(tx, actor, audit.action, `deployment:${dep.id}`, audit.details);
    return dep.id;
  });
  if (deps.redisReady && !deps.redisReady()) {
    deps.log.warn(
      { deploymentId: id },
      "Redis is down: rollout not queued now; the deploy worker's sweep queues it once Redis is back",
    );
  } else {
    await withinMs(enqueueRollout(deps.queue, id), ENQUEUE_WAIT_MS, "enqueue rollout").catch((err: Error) =>
      deps.log.error({ err: err.message, deploymentId: id }, "could not enqueue rollout; the worker sweep will"),
    );
  }
  return id;
}

/**
 * The answer a key already got, if this token used it before. The same key with another
 * request is refused: the client mixed up keys, and guessing which request it meant
 * would create or hide a deployment.
 */
async function replay<T extends object>(
  deps: DeployDeps,
  actor: Actor,
  idem: IdempotencyKey | undefined,
): Promise<(T & { replayed: true }) | undefined> {
  if (!idem) return undefined;
  const prior = await deps.db.deployment.findUnique({
    where: { createdBy_idempotencyKey: { createdBy: actor.name, idempotencyKey: idem.key } },
    select: { id: true, idempotencyRequest: true, idempotencyResponse: true },
  });
  if (!prior) return undefined;
  if (prior.idempotencyRequest !== idem.request) {
    throw new ApiError(
      422,
      "idempotency_key_reused",
      `Idempotency-Key "${idem.key}" was already used by token "${actor.name}" for a different request (deployment ${prior.id}): send a new key for a new request, or exactly the same request to get that deployment`,
      [{ path: "", code: "idempotency_key_reused", message: `key used for deployment ${prior.id}` }],
    );
  }
  return { ...(prior.idempotencyResponse as T), replayed: true };
}

/** Runs `create`; a concurrent request with the same key that committed first wins, and this one replays it. */
async function once<T extends object>(
  deps: DeployDeps,
  actor: Actor,
  idem: IdempotencyKey | undefined,
  create: () => Promise<T>,
): Promise<T & { replayed?: true }> {
  const prior = await replay<T>(deps, actor, idem);
  if (prior) return prior;
  try {
    const created: T & { replayed?: true } = await create();
    return created;
  } catch (err) {
    // A concurrent request with the same key won: the key's unique index (P2002), or for a
    // rollback the status guard (409 already rolled back) when the other committed first.
    const lost = (err as { code?: string }).code === "P2002" || (err instanceof ApiError && err.code === "conflict");
    const again = idem && lost ? await replay<T>(deps, actor, idem) : undefined;
    if (again) return again;
    throw err;
  }
}

export type Created = { id: string; targets: number };

const FAMILY_NAME = { ipv4: "IPv4", ipv6: "IPv6" } as const;

function noCountryData(missing: readonly MissingCountryData[]): ApiError {
  const what = (m: MissingCountryData) => (m.none ? "" : `${m.families.map((f) => FAMILY_NAME[f]).join(" and ")} `);
  return new ApiError(
    409,
    "conflict",
    `this version tests countries with no address ranges in the country data: ${missing.map((m) => `${m.country}${m.none ? "" : ` (${what(m).trim()})`}`).join(", ")}. Their sets would be empty, so a rule on them would match nobody, and a negated one everybody. Load the data first (palisade geoip update), correct the country code (the data uses ISO 3166 codes: GB, not UK), or restrict a rule on a country without ranges in one family to the other (match family)`,
    missing.map((m) => ({
      path: "/version",
      code: "geoip_no_data",
      message: `country ${m.country} has no ${what(m)}ranges`,
    })),
  );
}

/**
 * A version that tests countries needs ranges for each of them in each family it is tested
 * in, and agents that fill the country sets (`capable`: the hosts that must have the geoip
 * capability). Runs in the deployment's transaction, under the data's lock; a refusal
 * writes nothing.
 */
async function refuseWithoutGeoip(
  tx: Prisma.TransactionClient,
  tested: ReadonlyMap<string, readonly geoip.GeoFamily[]>,
  capable: string[],
): Promise<void> {
  // A country with no ranges is an empty set: a drop on it matches nobody, and a negated
  // test (`! --src-cc XX`) matches everybody, which locks the operator out. A code the data
  // does not use (UK for GB) or a deploy before the first `geoip update` is that case.
  const missing = await countriesWithoutData(tx, tested);
  if (missing.length > 0) throw noCountryData(missing);
  // An older agent would load the rules with empty sets (a geoip drop would match nothing,
  // a negated geoip accept everything).
  const old = (await hostsWithoutGeoip(tx, capable)).map((h) => h.name);
  if (old.length === 0) return;
  throw new ApiError(
    409,
    "unsupported",
    `this version tests countries (geoip: ${[...tested.keys()].join(", ")}) and the agent of ${old.length} selected host(s) does not fill country sets (no 'geoip' capability): ${old.join(", ")}. Upgrade those agents or narrow the selector`,
    old.map((h) => ({
      path: "/selector",
      code: "geoip_unsupported",
      message: `host ${h}: agent without the geoip capability`,
    })),
  );
}

/** At most this many rules are named in a refusal's message (the count says how many more). */
const RULES_NAMED = 10;

function ruleList(rules: string[]): string {
  const more = rules.length - RULES_NAMED;
  return rules.slice(0, RULES_NAMED).join(", ") + (more > 0 ? ` and ${more} more` : "");
}

/**
 * A version whose rules need a kernel feature (queue, tproxy, socket: KERNEL_FEATURES) goes
 * only to hosts whose agent reported it: the agent probes its kernel when it starts and lists
 * the features that passed. Elsewhere the kernel refuses the whole transaction and nothing
 * is applied, so the deploy is refused before anything is written, naming the feature, the
 * rules, the hosts and the fix. A host that has not reported yet (never connected) is not
 * counted: its agent's own refusal says so. `groups`: each document with the hosts it would
 * go to. Rollbacks skip such hosts instead (lackingFeatures).
 */
async function refuseWithoutKernelFeatures(
  db: Db,
  groups: { document: Policy; hostIds: string[]; what: string }[],
): Promise<void> {
  for (const g of groups) {
    for (const use of kernelFeatureUses(g.document)) {
      const lacking = (await hostsLacking(db, g.hostIds, use.feature)).map((h) => h.name);
      if (lacking.length === 0) continue;
      const f = KERNEL_FEATURES[use.feature];
      const rules = ruleList(use.rules);
      throw new ApiError(
        409,
        "unsupported",
        `${g.what} needs ${f.what} for ${use.rules.length} rule(s) (${rules}), and the kernel of ${lacking.length} selected host(s) lacks it (their agent reported no '${use.feature}' capability): ${lacking.join(", ")}. To deploy it there, ${f.remedy}; after loading the module restart the agent, which probes its kernel when it starts. Or narrow the selector`,
        lacking.map((h) => ({
          path: "/selector",
          code: `${use.feature}_unsupported`,
          message: `host ${h}: kernel without ${use.feature}, needed by ${rules}`,
        })),
      );
    }
  }
}

export async function createDeployment(
  deps: DeployDeps,
  actor: Actor,
  req: NewDeployment,
  idem?: IdempotencyKey,
): Promise<Created & { replayed?: true }> {
  return once(deps, actor, idem, () => newDeployment(deps, actor, req, idem));
}

async function newDeployment(
  deps: DeployDeps,
  actor: Actor,
  req: NewDeployment,
  idem: IdempotencyKey | undefined,
): Promise<Created> {
  const version = await deps.db.rulesetVersion.findFirst({
    where: { number: req.version, ruleset: { name: req.ruleset } },
    select: { id: true, document: true },
  });
  if (!version) {
    const exists = await deps.db.ruleset.count({ where: { name: req.ruleset } });
    throw notFound(exists ? `version ${req.version} of ruleset "${req.ruleset}"` : `ruleset "${req.ruleset}"`);
  }
  const hosts = await resolveSelector(deps.db, req.selector);
  const document = version.document as unknown as Policy;
  await refuseWithoutKernelFeatures(deps.db, [
    { document, hostIds: hosts.map((h) => h.id), what: `version ${req.version} of ruleset "${req.ruleset}"` },
  ]);
  const id = await insert(
    deps,
    actor,
    { versionId: version.id, selector: req.selector, strategy: req.strategy },
    hosts.map((h) => ({ hostId: h.id, versionId: version.id, previousVersionId: h.appliedVersionId })),
    {
      action: "deployment.create",
      details: {
        ruleset: req.ruleset,
        version: req.version,
        hosts: hosts.map((h) => h.name),
        strategy: req.strategy as unknown as Prisma.InputJsonValue,
      },
    },
    idem,
    (id) => ({ id, targets: hosts.length }),
    { countries: geoip.policyCountryFamilies(document), capable: hosts.map((h) => h.id) },
  );
  return { id, targets: hosts.length };
}

/**
 * Put back what each target ran before: a new deployment whose targets carry their own
 * previous version. Targets that ran nothing before have nothing to go back to, and targets
 * whose kernel lacks a feature the version they would go back to needs (their agent would
 * refuse it: nothing applied) cannot take it; both are listed as skipped, with the reason,
 * and left as they are (Palisade never deletes a host's rules by itself). A rollback is an
 * emergency path: one such host must not hold back the others.
 */
export interface SkippedTarget {
  host: string;
  /** no_previous_version, or FEATURE_unsupported (queue_unsupported, ...). */
  code: string;
  reason: string;
}
export type RolledBack = Created & { skipped: string[]; skippedReasons: SkippedTarget[] };

export async function createRollback(
  deps: DeployDeps,
  actor: Actor,
  deploymentId: string,
  idem?: IdempotencyKey,
): Promise<RolledBack & { replayed?: true }> {
  return once(deps, actor, idem, () => newRollback(deps, actor, deploymentId, idem));
}

/**
 * For each host of `groups`, the features its version needs that its agent did not report
 * (same rule as refuseWithoutKernelFeatures: a host that never reported is not counted).
 */
async function lackingFeatures(
  db: Db,
  groups: { document: Policy; hostIds: string[] }[],
): Promise<Map<string, { feature: KernelFeatureName; rules: string[] }[]>> {
  const lacking = new Map<string, { feature: KernelFeatureName; rules: string[] }[]>();
  for (const g of groups) {
    for (const use of kernelFeatureUses(g.document)) {
      for (const h of await hostsLacking(db, g.hostIds, use.feature)) {
        if (!lacking.has(h.id)) lacking.set(h.id, []);
        lacking.get(h.id)!.push(use);
      }
    }
  }
  return lacking;
}

async function newRollback(
  deps: DeployDeps,
  actor: Actor,
  deploymentId: string,
  idem: IdempotencyKey | undefined,
): Promise<RolledBack> {
  const orig = await deps.db.deployment.findUnique({
    where: { id: deploymentId },
    include: {
      targets: { include: { host: { select: { name: true, appliedVersionId: true } } }, orderBy: [{ batch: "asc" }] },
    },
  });
  if (!orig) throw notFound(`deployment ${deploymentId}`);
  if (orig.status === "rolled_back") throw conflict(`deployment ${deploymentId} was already rolled back`);
  const hadPrevious = orig.targets.filter((t) => t.previousVersionId);
  if (hadPrevious.length === 0)
    throw conflict(`no target of deployment ${deploymentId} ran a version before it; nothing to roll back to`);
  // The versions gone back to may test countries whose data was emptied since (a forced load).
  const previous = await deps.db.rulesetVersion.findMany({
    where: { id: { in: [...new Set(hadPrevious.map((t) => t.previousVersionId!))] } },
    select: { id: true, number: true, document: true, ruleset: { select: { name: true } } },
  });
  const versionOf = new Map(previous.map((v) => [v.id, v]));
  // The kernel may have lost a module since (another kernel booted): each version is checked
  // against the hosts that go back to it.
  const lacking = await lackingFeatures(
    deps.db,
    previous.map((v) => ({
      document: v.document as unknown as Policy,
      hostIds: hadPrevious.filter((t) => t.previousVersionId === v.id).map((t) => t.hostId),
    })),
  );
  const skippedReasons: SkippedTarget[] = [];
  const withPrevious: typeof hadPrevious = [];
  for (const t of orig.targets) {
    const uses = lacking.get(t.hostId);
    if (!t.previousVersionId) {
      skippedReasons.push({
        host: t.host.name,
        code: "no_previous_version",
        reason: "ran no version before this deployment",
      });
    } else if (uses) {
      const v = versionOf.get(t.previousVersionId)!;
      for (const u of uses) {
        skippedReasons.push({
          host: t.host.name,
          code: `${u.feature}_unsupported`,
          reason: `version ${v.number} of ruleset "${v.ruleset.name}", which it would go back to, needs ${KERNEL_FEATURES[u.feature].what} for ${ruleList(u.rules)}, and its agent reported no '${u.feature}' capability. This rollback leaves it on the version it runs, and a second rollback of this deployment is refused (already rolled back): once its kernel has it (load that module) and its agent was restarted (it probes the kernel when it starts), deploy version ${v.number} of ruleset "${v.ruleset.name}" to it (palisade deploy ${v.ruleset.name}@${v.number} --hosts ${t.host.name})`,
        });
      }
    } else withPrevious.push(t);
  }
  const skipped = [...new Set(skippedReasons.map((s) => s.host))];
  if (withPrevious.length === 0) throw noHostCanGoBack(deploymentId, lacking, orig.targets, versionOf);
  // The deployment row names one version: the one most targets go back to.
  const tally = new Map<string, number>();
  for (const t of withPrevious) tally.set(t.previousVersionId!, (tally.get(t.previousVersionId!) ?? 0) + 1);
  const main = [...tally.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  const strategy = storedStrategy(orig.strategy);
  const countries = geoip.mergeCountryFamilies(
    previous.filter((v) => tally.has(v.id)).map((v) => geoip.policyCountryFamilies(v.document as unknown as Policy)),
  );
  const id = await insert(
    deps,
    actor,
    { versionId: main, selector: { hosts: withPrevious.map((t) => t.hostId) }, strategy, rollbackOfId: orig.id },
    withPrevious.map((t) => ({
      hostId: t.hostId,
      versionId: t.previousVersionId!,
      previousVersionId: t.host.appliedVersionId,
    })),
    {
      action: "deployment.rollback",
      details: {
        of: orig.id,
        hosts: withPrevious.map((t) => t.host.name),
        skipped,
        skippedReasons: skippedReasons as unknown as Prisma.InputJsonValue,
      },
    },
    idem,
    (id) => ({
      id,
      targets: withPrevious.length,
      skipped,
      skippedReasons: skippedReasons as unknown as Prisma.InputJsonValue,
    }),
    { countries },
  );
  return { id, targets: withPrevious.length, skipped, skippedReasons };
}

/**
 * Every target that ran a version before lacks a feature that version needs: nothing can be
 * rolled back. The undone deployment stays as it is; the fix is the host's kernel (or a new
 * deployment of a version without the feature).
 */
function noHostCanGoBack(
  deploymentId: string,
  lacking: Map<string, { feature: KernelFeatureName; rules: string[] }[]>,
  targets: { hostId: string; previousVersionId: string | null; host: { name: string } }[],
  versionOf: Map<string, { number: number; ruleset: { name: string } }>,
): ApiError {
  const details: { path: string; code: string; message: string }[] = [];
  const features = new Set<KernelFeatureName>();
  const hosts: string[] = [];
  for (const t of targets) {
    if (!t.previousVersionId) continue;
    const v = versionOf.get(t.previousVersionId)!;
    hosts.push(t.host.name);
    for (const u of lacking.get(t.hostId) ?? []) {
      features.add(u.feature);
      details.push({
        // A rollback has no body: the detail is about the request as a whole.
        path: "",
        code: `${u.feature}_unsupported`,
        message: `host ${t.host.name}: kernel without ${u.feature}, needed by version ${v.number} of ruleset "${v.ruleset.name}" at ${ruleList(u.rules)}`,
      });
    }
  }
  const fs = [...features].sort();
  const none = targets.filter((t) => !t.previousVersionId).map((t) => t.host.name);
  return new ApiError(
    409,
    "unsupported",
    `deployment ${deploymentId} cannot be rolled back on any host: the version(s) its targets would go back to need ${fs.map((f) => KERNEL_FEATURES[f].what).join(" and ")}, and the kernel of every such host lacks it (their agent reported no ${fs.map((f) => `'${f}'`).join(" / ")} capability): ${hosts.join(", ")}${none.length ? `; the other targets ran no version before (${none.join(", ")})` : ""}. Nothing was changed. To roll back, ${fs.map((f) => KERNEL_FEATURES[f].remedy).join("; and ")}; then restart the agent, which probes its kernel when it starts, and ask again. Or deploy a version without it`,
    details,
  );
}
