// The API's typings of proto/palisade/v1/agent.proto. Loading (path, proto-loader options,
// the service lookup) lives in src/protocol/agent.ts, shared with the agent; re-exported
// here for the server, tests and the fan-out bench, which play agents.
export { agentService, LOADER_OPTIONS, MAX_MESSAGE_BYTES, PROTO_PATH } from "../../protocol/agent.ts";

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
  | { heartbeat: { seq: string; unixMs: string } }
  | { resultAck: { resultId: string } };
