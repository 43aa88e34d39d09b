// Agent failures as typed values: `code` is stable (logs, ApplyResult.error prefixes and
// tests switch on it); `message` is a sentence for an operator.

export type AgentErrorCode =
  /** Flags/env did not parse; the message lists every problem. */
  | "invalid_config"
  /** The state dir is unreadable, or a file in it is corrupt. */
  | "state_error"
  /** The policy JSON from the API did not parse or validate. */
  | "invalid_policy"
  /** `nft -c` refused the rendered ruleset; the kernel is unchanged. */
  | "check_failed"
  /** `nft -f` refused the ruleset; the kernel is unchanged. */
  | "apply_failed"
  /** Restoring the previous ruleset failed: the kernel may hold the new rules. */
  | "rollback_failed"
  /** Enrollment was refused or the server is unreachable. */
  | "enroll_failed"
  /** The server did not present the CA the enrollment token pins (a different server, or someone in between). */
  | "ca_mismatch"
  /** The host enrolled with mutual TLS but tls.json is gone: the agent refuses to fall back to plaintext. */
  | "tls_missing"
  /** The client certificate could not be renewed. */
  | "renew_failed"
  /** The move from plaintext to mutual TLS was refused or could not finish; nothing was stored. */
  | "upgrade_failed"
  /** The telemetry spool could not be written. */
  | "spool_error"
  /** A quota reset names no quota and no growing quota's counter the kernel holds. */
  | "unknown_quota";

export class AgentError extends Error {
  override readonly name = "AgentError";
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
