// Loads proto/palisade/v1/agent.proto for the server (and for tests and the fan-out bench,
// which play agents). proto-loader options: camelCase fields, uint64 as decimal strings
// (no precision loss), enums by name, defaults filled in, and `body` naming the oneof
// member that is set — the shapes the TypeScript types below describe.
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

export const PROTO_PATH = fileURLToPath(new URL("../../../proto/palisade/v1/agent.proto", import.meta.url));

export const LOADER_OPTIONS = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true } as const;

/** Largest message either side accepts. Telemetry batches are the big ones; a policy is far smaller. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

type ServiceCtor = grpc.ServiceClientConstructor;

let cached: { service: grpc.ServiceDefinition; Client: ServiceCtor } | undefined;

export function agentService(): { service: grpc.ServiceDefinition; Client: ServiceCtor } {
  if (cached) return cached;
  const def = loadSync(PROTO_PATH, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { palisade: { v1: { AgentService: ServiceCtor } } };
  const Client = pkg.palisade.v1.AgentService;
  cached = { service: Client.service, Client };
  return cached;
}

export type ApplyStatusName = "APPLY_STATUS_UNSPECIFIED" | "APPLY_STATUS_APPLYING" | "APPLY_STATUS_APPLIED" | "APPLY_STATUS_FAILED" | "APPLY_STATUS_ROLLED_BACK";

export interface AppliedVersionMsg {
  ruleset: string;
  version: number;
  checksum: string;
}

export interface DesiredStateMsg {
  deploymentId: string;
  targetId: string;
  version: AppliedVersionMsg;
  policyJson: string;
  confirmTimeoutSeconds: number;
}

/** What the server sends: exactly one member set. */
export type ServerMessage =
  | { desiredState: DesiredStateMsg }
  | { confirm: { deploymentId: string; targetId: string } }
  | { telemetryAck: { epoch: string; seq: string } }
  | { checkDrift: Record<string, never> }
  | { quotaReset: { requestId: string; name: string } }
  | { heartbeat: { seq: string; unixMs: string } };
