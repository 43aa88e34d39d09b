// The agent's typings of proto/palisade/v1/agent.proto. Loading (path, proto-loader
// options, the service lookup) is src/protocol/agent.ts, shared with the API's server, so
// both sides see identical shapes.

import type * as grpc from "@grpc/grpc-js";
import { agentService } from "../protocol/agent.ts";
import type { UnavailableMsg } from "./programs.ts";
import type { TelemetryBatch } from "./telemetry/batch.ts";

export { MAX_MESSAGE_BYTES } from "../protocol/agent.ts";

export function agentServiceClient(): grpc.ServiceClientConstructor {
  return agentService().Client;
}

export interface CapabilitiesMsg {
  nftVersion: string;
  kernel: string;
  ipv6: boolean;
  features: string[];
  xtablesModules: string[];
  agentVersion: string;
  unavailable: UnavailableMsg[];
}

export interface AppliedVersionMsg {
  ruleset: string;
  version: number;
  checksum: string;
}

export type ApplyStatusName = "APPLY_STATUS_APPLYING" | "APPLY_STATUS_APPLIED" | "APPLY_STATUS_FAILED" | "APPLY_STATUS_ROLLED_BACK";

/**
 * Messages the agent sends (one member set). Numbers go out as numbers; grpc encodes uint64.
 * `resultId` of the three results is stamped by the outbox (outbox.ts), which keeps each
 * result until the API's ResultAck names it.
 */
export type AgentMessage =
  | { hello: { capabilities: CapabilitiesMsg; applied?: AppliedVersionMsg; telemetryEpoch: string } }
  | { heartbeat: { seq: number; unixMs: number } }
  | { applyResult: { deploymentId: string; targetId: string; version?: AppliedVersionMsg; status: ApplyStatusName; error: string; resultId?: string } }
  | { drift: { drifted: boolean; details: string; restored: boolean; resultId?: string } }
  | { telemetry: TelemetryBatch }
  | { quotaReset: { requestId: string; name: string; ok: boolean; error: string; resultId?: string } };

export interface DesiredStateMsg {
  deploymentId: string;
  targetId: string;
  version: AppliedVersionMsg | null;
  policyJson: string;
  confirmTimeoutSeconds: number;
}

/** What arrives from the server (uint64 as strings; `body` names the member). */
export interface ServerMessageIn {
  body?: string;
  desiredState?: DesiredStateMsg;
  confirm?: { deploymentId: string; targetId: string };
  telemetryAck?: { epoch: string; seq: string };
  checkDrift?: Record<string, never>;
  quotaReset?: { requestId: string; name: string };
  heartbeat?: { seq: string; unixMs: string };
  resultAck?: { resultId: string };
}
