// gRPC errors with a status code and a stable Palisade code (sent as `palisade-code`
// trailing metadata) so an agent can tell "token expired" from "token reused".
import * as grpc from "@grpc/grpc-js";

export type AgentErrorCode =
  | "invalid_token"
  | "token_used"
  | "token_expired"
  | "invalid_name"
  | "name_taken"
  | "unauthenticated"
  | "wrong_host"
  | "host_disabled"
  | "host_deleted"
  | "certificate_superseded"
  | "malformed_message"
  | "invalid_csr"
  | "wrong_listener"
  | "rate_limited"
  | "upgrade_secret_invalid"
  | "upgrade_secret_used"
  | "upgrade_secret_expired"
  | "csr_wrong_host"
  | "internal";

const STATUS: Record<AgentErrorCode, grpc.status> = {
  invalid_token: grpc.status.UNAUTHENTICATED,
  token_used: grpc.status.UNAUTHENTICATED,
  token_expired: grpc.status.UNAUTHENTICATED,
  invalid_name: grpc.status.INVALID_ARGUMENT,
  name_taken: grpc.status.ALREADY_EXISTS,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  wrong_host: grpc.status.PERMISSION_DENIED,
  host_disabled: grpc.status.PERMISSION_DENIED,
  host_deleted: grpc.status.UNAUTHENTICATED,
  certificate_superseded: grpc.status.UNAUTHENTICATED,
  malformed_message: grpc.status.INVALID_ARGUMENT,
  invalid_csr: grpc.status.INVALID_ARGUMENT,
  wrong_listener: grpc.status.FAILED_PRECONDITION,
  rate_limited: grpc.status.RESOURCE_EXHAUSTED,
  upgrade_secret_invalid: grpc.status.UNAUTHENTICATED,
  upgrade_secret_used: grpc.status.UNAUTHENTICATED,
  upgrade_secret_expired: grpc.status.UNAUTHENTICATED,
  csr_wrong_host: grpc.status.PERMISSION_DENIED,
  internal: grpc.status.INTERNAL,
};

export class AgentRpcError extends Error {
  override name = "AgentRpcError";
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(message);
  }

  toStatus(): Partial<grpc.StatusObject> {
    const metadata = new grpc.Metadata();
    metadata.set("palisade-code", this.code);
    return { code: STATUS[this.code], details: this.message, metadata };
  }
}

/** Any thrown value as a status to send: AgentRpcError as itself, everything else INTERNAL without internals. */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof AgentRpcError) return err.toStatus();
  return new AgentRpcError("internal", "internal error; see the API's log").toStatus();
}
