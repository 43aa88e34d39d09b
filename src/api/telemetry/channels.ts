// Redis pub/sub channels the telemetry code uses. Messages are JSON.
import type { HostNotice } from "../host-bus.ts";
//
// palisade:host:<hostId>  — to whichever replica holds that host's agent stream. The
//   holder forwards each message to the agent as a ServerMessage. Shape (by `type`):
//     { "type": "quota_reset", "requestId": "<uuid>", "name": "<quota name>" }
//       -> ServerMessage{ quota_reset: QuotaReset{ request_id, name } }
//   The agent answers with AgentMessage{ quota_reset: QuotaResetResult }, which the
//   stream handler passes to recordQuotaReset(). A request published while no stream
//   is up stays `pending`; the stream handler may replay pendingQuotaResets(hostId)
//   when the agent connects.
//
// palisade:logs — every stored log event, after its batch committed (GET /v1/logs/stream).
//
// palisade:tokens:revoked — the id of an API token just revoked: live log streams of that
//   token end on every replica (telemetry/log-feed.ts).

export { hostChannel } from "../host-bus.ts";
export const LOGS_CHANNEL = "palisade:logs";
export const TOKEN_REVOKED_CHANNEL = "palisade:tokens:revoked";

/** A quota reset on the host bus (../host-bus.ts publishes and validates it). */
export type QuotaResetMessage = Extract<HostNotice, { type: "quota_reset" }>;

/** One log event as the API lists and streams it. */
export interface LogEventView {
  id: string;
  at: string;
  hostId: string;
  host: string;
  prefix: string;
  level: number;
  mark: number | null;
  ctmark: number | null;
  fields: Record<string, string | number>;
}
