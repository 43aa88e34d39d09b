// The DesiredState message for a claimed target. Versions are immutable (a trigger refuses
// UPDATE), so their JSON is cached per process: fanning one version out to 500 hosts
// reads the document once, not 500 times.
import type { Db } from "../db/client.ts";
import type { DesiredState } from "../../protocol/agent.ts";
import { storedStrategy } from "./strategy.ts";
import type { ClaimedTarget } from "./targets.ts";

interface CachedVersion {
  ruleset: string;
  version: number;
  checksum: string;
  policyJson: string;
}

const CACHE_MAX = 64;
const cache = new Map<string, Promise<CachedVersion>>();

export function versionPayload(db: Db, versionId: string): Promise<CachedVersion> {
  const hit = cache.get(versionId);
  if (hit) return hit;
  const p = db.rulesetVersion
    .findUniqueOrThrow({ where: { id: versionId }, include: { ruleset: { select: { name: true } } } })
    .then((v) => ({
      ruleset: v.ruleset.name,
      version: v.number,
      checksum: v.checksum,
      policyJson: JSON.stringify(v.document),
    }));
  p.catch(() => cache.delete(versionId));
  cache.set(versionId, p);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
  return p;
}

export async function desiredStateFor(db: Db, claimed: ClaimedTarget): Promise<DesiredState> {
  const v = await versionPayload(db, claimed.versionId);
  return {
    deploymentId: claimed.deploymentId,
    targetId: claimed.targetId,
    version: { ruleset: v.ruleset, version: v.version, checksum: v.checksum },
    policyJson: v.policyJson,
    confirmTimeoutSeconds: storedStrategy(claimed.strategy).confirmTimeoutSeconds,
    attempt: claimed.attempt,
  };
}
