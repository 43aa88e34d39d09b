// What the rest of the API uses from the telemetry code.
//
// For the agent stream (src/api/grpc/session.ts):
//   telemetry   -> const r = await ingestTelemetry(ctx, hostId, batch);
//                  send { telemetryAck: { epoch: r.epoch, seq: r.seq } }   (also when r.duplicate)
//                  A TelemetryError "invalid_batch" means the batch can never be stored:
//                  the handler decides (refuse the stream with the message, or ack and log).
//   quotaReset  -> await recordQuotaReset(ctx, hostId, { requestId, name, ok, error })
//   on hello    -> for (const m of await pendingQuotaResets(ctx, hostId)) forward m
// Quota resets reach the stream holder on Redis channel palisade:host:<hostId> as
// { type: "quota_reset", requestId, name } (channels.ts).
export { ingestTelemetry, type IngestResult, type TelemetryContext } from "./ingest.ts";
export { recordQuotaReset, requestQuotaReset, pendingQuotaResets, type QuotaResetResultMsg } from "./quota-reset.ts";
export { hostChannel, LOGS_CHANNEL, type QuotaResetMessage, type LogEventView } from "./channels.ts";
export { TelemetryError, type TelemetryErrorCode } from "./errors.ts";
export { telemetryService } from "./service.ts";
