// What an agent may send on its Connect stream, checked before anything is written.
// protobuf decoding already guarantees types; these schemas bound sizes and shapes (ids
// are UUIDs, texts have limits) so a buggy or hostile agent gets INVALID_ARGUMENT instead
// of reaching the database with garbage.
import { z } from "zod";
import { agentMessageBody, type AgentMessage as AgentMessageIn, type TelemetryBatch } from "../../protocol/agent.ts";

const text = (max: number) => z.string().max(max);
const uuidOrEmpty = z.union([z.uuid(), z.literal("")]);
const strings = z.array(text(128)).max(512);
/** The agent's id for one result (a UUID from current agents; empty from older ones, which get no ResultAck). */
const RESULT_ID = /^[A-Za-z0-9-]{1,64}$/;
const resultId = z.union([z.string().regex(RESULT_ID), z.literal("")]);

export const Capabilities = z.object({
  nftVersion: text(128),
  kernel: text(256),
  ipv6: z.boolean(),
  features: strings,
  xtablesModules: strings,
  agentVersion: text(128),
  /** What does not work on the host and why (absent from agents before it existed). */
  unavailable: z
    .array(z.object({ program: text(64), reason: text(1024) }))
    .max(64)
    .default([]),
});
export type Capabilities = z.infer<typeof Capabilities>;

export const AppliedVersion = z.object({
  ruleset: text(63),
  version: z.number().int().min(0),
  checksum: text(128),
});
export type AppliedVersion = z.infer<typeof AppliedVersion>;

export const Hello = z.object({
  capabilities: Capabilities.nullish(),
  applied: AppliedVersion.nullish(),
  telemetryEpoch: text(128),
  bansHeld: z.boolean().default(false),
});

const u64 = z.string().regex(/^\d{1,20}$/);
export const Heartbeat = z.object({
  seq: u64,
  unixMs: z.string().regex(/^-?\d{1,20}$/),
  /** The agent's spool backlog (absent from agents that predate it); stored as bigint, so at most 18 digits. */
  spoolBatches: z
    .string()
    .regex(/^\d{1,18}$/)
    .optional(),
  spoolBytes: z
    .string()
    .regex(/^\d{1,18}$/)
    .optional(),
});

export const ApplyResult = z.object({
  deploymentId: uuidOrEmpty,
  targetId: uuidOrEmpty,
  version: AppliedVersion.nullish(),
  status: z.enum([
    "APPLY_STATUS_UNSPECIFIED",
    "APPLY_STATUS_APPLYING",
    "APPLY_STATUS_APPLIED",
    "APPLY_STATUS_FAILED",
    "APPLY_STATUS_ROLLED_BACK",
  ]),
  error: text(64 * 1024),
  resultId,
  attempt: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .default(0),
});
export type ApplyResult = z.infer<typeof ApplyResult>;

export const DriftReport = z.object({
  drifted: z.boolean(),
  details: text(64 * 1024),
  restored: z.boolean(),
  resultId,
});
export type DriftReport = z.infer<typeof DriftReport>;

export const QuotaResetResult = z.object({
  requestId: text(128),
  name: text(128),
  ok: z.boolean(),
  error: text(64 * 1024),
  resultId,
});
export type QuotaResetResult = z.infer<typeof QuotaResetResult>;

const u64ms = z.string().regex(/^\d{1,15}$/);
export const DynamicSetsResult = z.object({
  requestId: z.uuid(),
  sets: z
    .array(
      z.object({
        name: text(64),
        type: text(32),
        timeoutMs: u64ms,
        size: z.number().int().min(0),
        owner: text(64),
        rules: z.array(text(256)).max(256),
        elements: z.array(z.object({ address: text(64), timeoutMs: u64ms, expiresMs: u64ms })).max(10_000),
        total: z.number().int().min(0),
      }),
    )
    .max(1024),
  errorCode: text(64),
  error: text(4096),
});
export type DynamicSetsResult = z.infer<typeof DynamicSetsResult>;

/** At most this many addresses in one report (the agent sends fewer; it caps its own rate). */
export const MAX_TRAP_HITS = 1000;
export const TrapHits = z.object({ addresses: z.array(text(64)).max(MAX_TRAP_HITS) });

/** Countries one policy can test: far fewer than this. */
export const MAX_GEOIP_COUNTRIES = 300;
export const GeoIpRequest = z.object({
  countries: z
    .array(z.object({ country: z.string().regex(/^[A-Z]{2}$/), revision: z.coerce.number().int().min(0) }))
    .max(MAX_GEOIP_COUNTRIES),
});

export type AgentMessage =
  | { kind: "hello"; hello: z.infer<typeof Hello> }
  | { kind: "heartbeat"; heartbeat: z.infer<typeof Heartbeat> }
  | { kind: "applyResult"; applyResult: ApplyResult }
  | { kind: "drift"; drift: DriftReport }
  // Telemetry validates a batch itself (../telemetry/batch.ts): a batch it can never
  // store is acked and dropped, not a reason to end the stream.
  | { kind: "telemetry"; telemetry: TelemetryBatch }
  | { kind: "quotaReset"; quotaReset: QuotaResetResult }
  | { kind: "dynamicSets"; dynamicSets: DynamicSetsResult }
  | { kind: "trapHits"; trapHits: z.infer<typeof TrapHits> }
  | { kind: "geoipRequest"; geoipRequest: z.infer<typeof GeoIpRequest> };

export class MalformedMessage extends Error {
  override name = "MalformedMessage";
}

/** Validate one decoded AgentMessage (the oneof member set names its kind). */
export function parseAgentMessage(msg: AgentMessageIn): AgentMessage {
  const kind = agentMessageBody(msg);
  if (!kind)
    throw new MalformedMessage(
      "AgentMessage has no body (one of hello, heartbeat, apply_result, drift, telemetry, quota_reset, dynamic_sets, trap_hits, geoip_request)",
    );
  const value = msg[kind];
  const check = <T>(schema: z.ZodType<T>): T => {
    const r = schema.safeParse(value);
    if (!r.success) {
      const first = r.error.issues.slice(0, 5).map((i) => `${kind}.${i.path.join(".")}: ${i.message}`);
      throw new MalformedMessage(`malformed ${kind}: ${first.join("; ")}`);
    }
    return r.data;
  };
  switch (kind) {
    case "hello":
      return { kind: "hello", hello: check(Hello) };
    case "heartbeat":
      return { kind: "heartbeat", heartbeat: check(Heartbeat) };
    case "applyResult":
      return { kind: "applyResult", applyResult: check(ApplyResult) };
    case "drift":
      return { kind: "drift", drift: check(DriftReport) };
    case "telemetry":
      return { kind: "telemetry", telemetry: msg.telemetry! };
    case "quotaReset":
      return { kind: "quotaReset", quotaReset: check(QuotaResetResult) };
    case "dynamicSets":
      return { kind: "dynamicSets", dynamicSets: check(DynamicSetsResult) };
    case "trapHits":
      return { kind: "trapHits", trapHits: check(TrapHits) };
    case "geoipRequest":
      return { kind: "geoipRequest", geoipRequest: check(GeoIpRequest) };
  }
}
