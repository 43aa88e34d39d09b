// The agent's view of proto/palisade/v1/agent.proto, loaded with the same proto-loader
// options the API's server uses (src/api/grpc/proto.ts: camelCase, uint64 as decimal
// strings, enums by name, defaults, oneof member named in `body`), so both sides see
// identical shapes. TODO(move): one shared loader for api and agent once src/api/grpc is
// committed; this file duplicates its ten lines on purpose until then.

import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import type { AccountingDelta, CounterDelta, LogEventMsg, QuotaSampleMsg } from "./telemetry/batch.ts";

export const PROTO_PATH = fileURLToPath(new URL("../../proto/palisade/v1/agent.proto", import.meta.url));
export const LOADER_OPTIONS = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true } as const;
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

let cached: grpc.ServiceClientConstructor | undefined;

export function agentServiceClient(): grpc.ServiceClientConstructor {
  if (cached) return cached;
  const pkg = grpc.loadPackageDefinition(loadSync(PROTO_PATH, LOADER_OPTIONS)) as unknown as {
    palisade: { v1: { AgentService: grpc.ServiceClientConstructor } };
  };
  cached = pkg.palisade.v1.AgentService;
  return cached;
}

export interface CapabilitiesMsg {
  nftVersion: string;
  kernel: string;
  ipv6: boolean;
  features: string[];
  xtablesModules: string[];
  agentVersion: string;
}

export interface AppliedVersionMsg {
  ruleset: string;
  version: number;
  checksum: string;
}

export type ApplyStatusName = "APPLY_STATUS_APPLYING" | "APPLY_STATUS_APPLIED" | "APPLY_STATUS_FAILED" | "APPLY_STATUS_ROLLED_BACK";

/** Messages the agent sends (one member set). Numbers go out as numbers; grpc encodes uint64. */
export type AgentMessage =
  | { hello: { capabilities: CapabilitiesMsg; applied?: AppliedVersionMsg; telemetryEpoch: string } }
  | { heartbeat: { seq: number; unixMs: number } }
  | { applyResult: { deploymentId: string; targetId: string; version?: AppliedVersionMsg; status: ApplyStatusName; error: string } }
  | { drift: { drifted: boolean; details: string; restored: boolean } }
  | {
      telemetry: {
        epoch: string;
        seq: number;
        takenAtUnixMs: number;
        accounting: AccountingDelta[];
        quotas: QuotaSampleMsg[];
        counters: CounterDelta[];
        logs: LogEventMsg[];
      };
    }
  | { quotaReset: { requestId: string; name: string; ok: boolean; error: string } };

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
}
