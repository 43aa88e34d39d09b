// Typed failures of the telemetry code, with stable codes the gRPC handler and the
// routes map to their own answers (a gRPC status, an HTTP envelope).

export type TelemetryErrorCode =
  /** The batch does not have the TelemetryBatch shape (field, address, 64-bit range). */
  | "invalid_batch"
  /** A quota reset names a host or quota the API does not know. */
  | "unknown_quota";

export class TelemetryError extends Error {
  constructor(
    readonly code: TelemetryErrorCode,
    message: string,
    readonly details: { path: string; message: string }[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "TelemetryError";
  }
}
