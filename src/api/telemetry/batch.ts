// The TelemetryBatch the gRPC stream hands to ingestTelemetry, validated and normalised
// (the generated protocol's camelCase; uint64 as a decimal string, also accepted as
// number or bigint; missing repeated fields as empty). A batch that fails here is refused whole: nothing of it is stored.
import { isIP } from "node:net";
import { z } from "zod";
import { hasHostBits, parsePrefix } from "../../engine/index.ts";
import { TelemetryError } from "./errors.ts";
import { U63 } from "./u64.ts";

/** Counter totals of what the agent lost: packets = batches its spool dropped, bytes = their size on disk. */
export const SPOOL_DROPPED_COUNTER = "palisade.agent.spool_dropped";
/** Counter totals of log events the agent's buffer dropped (packets = events). */
export const LOGS_DROPPED_COUNTER = "palisade.agent.logs_dropped";

/** Stored address of a table's unattributed remainder (the agent sends ip ""). */
export const UNATTRIBUTED = "0.0.0.0/0";

const Name = z.string().min(1).max(128);

/** "network/n" with no host bits (an aggregated table's element), IPv4 or IPv6. */
function isNetwork(s: string): boolean {
  const p = parsePrefix(s);
  return p !== null && s.includes("/") && p.length > 0 && !hasHostBits(p);
}
const u32 = z.coerce.number().int().min(0).max(0xffffffff).default(0);
/** proto3 `optional uint32`: absent (or null) when unknown, kept as null; 0 is a value. */
const optU32 = z.coerce
  .number()
  .int()
  .min(0)
  .max(0xffffffff)
  .nullish()
  .transform((v) => v ?? null);
const text = (max: number) => z.string().max(max).default("");

const Accounting = z.object({
  table: Name,
  ip: z
    .string()
    .max(49)
    .refine(
      (s) => s === "" || isIP(s) !== 0 || isNetwork(s),
      "an IPv4/IPv6 address, a network/n of an aggregated table, or empty for the unattributed remainder",
    ),
  srcBytes: U63,
  srcPackets: U63,
  dstBytes: U63,
  dstPackets: U63,
});

const Quota = z.object({
  name: Name,
  mode: z.enum(["bytes", "packets"]).default("bytes"),
  limit: U63,
  used: U63,
  grow: z.boolean().default(false),
});

const CounterDelta = z.object({ name: Name, bytes: U63, packets: U63 });

// Limits at or above the kernel's: NFLOG prefixes of 127 bytes (the policy allows as many;
// counted here in characters, which is never less), interface names within IFNAMSIZ. An
// event outside them is dropped alone (counted as a dropped log event), never the batch:
// its accounting and counters must not be lost for a log field.
const LogEvent = z.object({
  unixMs: U63,
  prefix: text(127),
  level: z.coerce.number().int().min(0).max(8).default(4),
  mark: u32,
  ctmark: optU32,
  iif: text(16),
  oif: text(16),
  saddr: text(45),
  daddr: text(45),
  protocol: text(16),
  sport: u32,
  dport: u32,
  length: u32,
});

export const IncomingBatch = z
  .object({
    epoch: z.string().min(1).max(128),
    seq: U63,
    takenAtUnixMs: U63,
    accounting: z
      .array(Accounting)
      .nullish()
      .transform((a) => a ?? []),
    quotas: z
      .array(Quota)
      .nullish()
      .transform((a) => a ?? []),
    counters: z
      .array(CounterDelta)
      .nullish()
      .transform((a) => a ?? []),
    logs: z
      .array(z.unknown())
      .nullish()
      .transform((a) => a ?? []),
    // Absent from agents before these fields (and from batches they spooled).
    spoolDroppedBatches: U63.optional(),
    spoolDroppedBytes: U63.optional(),
    logsDropped: U63.optional(),
  })
  .transform(({ spoolDroppedBatches = 0n, spoolDroppedBytes = 0n, logsDropped: agentDropped = 0n, ...b }) => {
    const logs: z.output<typeof LogEvent>[] = [];
    for (const raw of b.logs) {
      const e = LogEvent.safeParse(raw);
      if (e.success) logs.push(e.data);
    }
    const logsDropped = agentDropped + BigInt(b.logs.length - logs.length);
    // The agent's losses are kept as counter totals under these names (nft object names
    // have no dots, so they cannot collide): agents before the proto fields sent them as
    // counter deltas with exactly these names, and both kinds of agent add up alike.
    const counters = [...b.counters];
    if (spoolDroppedBatches > 0n || spoolDroppedBytes > 0n)
      counters.push({ name: SPOOL_DROPPED_COUNTER, bytes: spoolDroppedBytes, packets: spoolDroppedBatches });
    if (logsDropped > 0n) counters.push({ name: LOGS_DROPPED_COUNTER, bytes: 0n, packets: logsDropped });
    return { ...b, logs, counters };
  });
export type IncomingBatch = z.input<typeof IncomingBatch>;
export type Batch = z.output<typeof IncomingBatch>;

export function parseBatch(raw: unknown): Batch {
  const r = IncomingBatch.safeParse(raw);
  if (!r.success) {
    const details = r.error.issues.slice(0, 20).map((i) => ({ path: `/${i.path.join("/")}`, message: i.message }));
    throw new TelemetryError(
      "invalid_batch",
      `telemetry batch refused: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`,
      details,
    );
  }
  return r.data;
}
