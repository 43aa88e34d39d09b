// A quota reset asked for by the API. A quota name stands for one kernel object: a
// down-counting quota is an nft quota of that name; a growing quota (quota2 --grow) is
// the counter quota_<name>_grow_<mode>; a packet budget is the set quota_<name>_packets
// (see the engine's quota compiler). The kernel is
// asked which one it holds and that one is zeroed; nft's reset zeroes atomically, and
// the next telemetry reading reports the new usage.

import { growCounterName, packetBucketSet, packetSpentSet, type Driver } from "../engine/index.ts";
import { AgentError, errorText } from "./errors.ts";
import type { Applier } from "./apply.ts";
import type { Outbox } from "./outbox.ts";

/** The table the compiler renders everything into (quota names live there). */
const PALISADE_TABLE = "palisade";

export async function resetQuotaByName(table: string, name: string, driver: Driver): Promise<void> {
  if ((await driver.readQuotas("inet", table)).some((q) => q.name === name)) {
    await driver.resetQuota("inet", table, name);
    return;
  }
  const counters = new Set((await driver.readCounters("inet", table)).map((c) => c.name));
  for (const mode of ["bytes", "packets"] as const) {
    const counter = growCounterName(name, mode);
    if (counters.has(counter)) {
      await driver.resetCounter("inet", table, counter);
      return;
    }
  }
  // A packet budget: the sets quota_<name>_packets (its token bucket) and _spent (the
  // --no-change flag). Emptied in one transaction, the next packet creates a full bucket.
  const sets = new Set((await driver.readTable("inet", table)).sets.map((x) => x.name));
  const budget = [packetBucketSet(name), packetSpentSet(name)].filter((x) => sets.has(x));
  if (budget.length > 0) {
    await driver.apply(budget.map((x) => `flush set inet ${table} ${x}`).join("\n"));
    return;
  }
  throw new AgentError(
    "unknown_quota",
    `no quota "${name}" in table inet ${table} (neither a quota, a growing quota's counter nor a packet budget's set)`,
  );
}

export interface QuotaResetOptions {
  driver: Driver;
  /**
   * Serialises the reset with applies (Applier.exclusive): a replace that carries values
   * reads the quota's usage and writes it back a moment later, which would undo a reset
   * landing in between while the API was told it was done; a rollback likewise.
   */
  exclusive: Applier["exclusive"];
}

/**
 * The API's QuotaResets, each answered through the outbox (ok, or why not) and run once per
 * request. The API sends a request again after every Hello until the answer is in; a reset
 * still waiting for the applier's lock (a confirm window), or answered and not yet
 * acknowledged, is not run a second time: usage counted between the two would be lost.
 */
export function quotaResetAnswerer(
  o: QuotaResetOptions,
  outbox: Outbox,
): (m: { requestId: string; name: string }) => Promise<void> {
  const running = new Set<string>();
  return async (m) => {
    if (running.has(m.requestId) || outbox.holdsQuotaReset(m.requestId)) return;
    running.add(m.requestId);
    const answer = (ok: boolean, error: string) =>
      outbox.post({ quotaReset: { requestId: m.requestId, name: m.name, ok, error } });
    try {
      await o
        .exclusive(() => resetQuotaByName(PALISADE_TABLE, m.name, o.driver))
        .then(
          () => answer(true, ""),
          (e) => answer(false, errorText(e)),
        );
    } finally {
      // The answer is in the outbox by now: holdsQuotaReset covers it until its ack.
      running.delete(m.requestId);
    }
  };
}
