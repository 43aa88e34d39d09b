// The request shapes of a deployment: which hosts (selector) and how to roll out (strategy).
import { z } from "zod";
import { LabelKey, LabelValue } from "../schemas.ts";

export const Selector = z
  .strictObject({
    hosts: z.array(z.string().min(1).max(253)).min(1).max(10_000).optional().describe("host ids or names"),
    labels: z.record(LabelKey, LabelValue).optional().describe("hosts whose labels include all of these"),
  })
  .refine((s) => s.hosts !== undefined || (s.labels !== undefined && Object.keys(s.labels).length > 0), {
    message: "give hosts, labels, or both (both: the listed hosts, each of which must carry the labels)",
  })
  .describe("which hosts; with both fields a host must be listed AND carry the labels");
export type Selector = z.infer<typeof Selector>;

export const Strategy = z
  .strictObject({
    batchSize: z.number().int().min(1).max(10_000).default(25).describe("hosts per batch after the canary batch"),
    canary: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(1)
      .describe("hosts in the first batch; a failure there always halts"),
    confirmTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(30)
      .describe("how long an agent waits for the API after applying before it rolls back by itself"),
    haltOnFailure: z.boolean().default(true).describe("stop before the next batch when a host failed or rolled back"),
    retries: z.number().int().min(0).max(5).default(1).describe("re-sends to a host that gave no result in time"),
  })
  .describe("rollout strategy; every field has a default");
export type Strategy = z.infer<typeof Strategy>;

/** A stored strategy (older rows may miss fields) with the defaults filled in. */
export function storedStrategy(raw: unknown): Strategy {
  const r = Strategy.safeParse(raw ?? {});
  return r.success ? r.data : Strategy.parse({});
}

/**
 * How long after sending a target waits for its result: the agent's confirm window twice
 * (apply + wait + rollback + reconnect), plus slack for slow hosts and reconnect backoff.
 */
export function resultTimeoutMs(s: Strategy): number {
  return (2 * s.confirmTimeoutSeconds + 10) * 1000;
}

/** Batch number of the i-th target (targets sorted by rollout order). Canary is batch 0 when set. */
export function batchOf(i: number, s: Strategy): number {
  if (i < s.canary) return 0;
  const offset = s.canary > 0 ? 1 : 0;
  return offset + Math.floor((i - s.canary) / s.batchSize);
}
