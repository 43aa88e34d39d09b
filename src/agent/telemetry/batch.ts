// A telemetry batch as the agent keeps and sends it: the TelemetryBatch message of
// proto/palisade/v1/agent.proto in proto-loader's camelCase form.

export interface AccountingDelta {
  table: string;
  /** IPv4/IPv6 address, or "network/n" for an aggregated table's prefix; "" for the table's unattributed remainder. */
  ip: string;
  srcBytes: number;
  srcPackets: number;
  dstBytes: number;
  dstPackets: number;
}

export interface QuotaSampleMsg {
  name: string;
  mode: string;
  limit: number;
  used: number;
  grow: boolean;
}

export interface CounterDelta {
  name: string;
  bytes: number;
  packets: number;
}

export interface LogEventMsg {
  unixMs: number;
  prefix: string;
  level: number;
  mark: number;
  /** Absent when the conntrack mark could not be determined (sent unset; 0 is a real mark). */
  ctmark?: number;
  iif: string;
  oif: string;
  saddr: string;
  daddr: string;
  protocol: string;
  sport: number;
  dport: number;
  length: number;
}

export interface TelemetryBatch {
  epoch: string;
  seq: number;
  takenAtUnixMs: number;
  accounting: AccountingDelta[];
  quotas: QuotaSampleMsg[];
  counters: CounterDelta[];
  logs: LogEventMsg[];
}

/**
 * Batches the spool dropped (full) or log events the buffer dropped, reported as
 * counter deltas under names no nft object can have (nft identifiers have no dots), so
 * the API sees the loss in the data stream itself. The proto has no field for it yet.
 */
export const SPOOL_DROPPED_COUNTER = "palisade.agent.spool_dropped";
export const LOGS_DROPPED_COUNTER = "palisade.agent.logs_dropped";
