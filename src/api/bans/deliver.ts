// Changes go to each affected host's channel on the per-host bus; the replica holding the
// agent's stream turns the absolute expiry into the remaining TTL as it sends. A host with
// no stream up gets its whole list after its next Hello instead, so nothing waits here.
import type { Redis } from "ioredis";
import { publishToHost } from "../host-bus.ts";
import type { HostBanChange } from "./store.ts";

export async function publishBanChanges(
  redis: Redis,
  changes: HostBanChange[],
): Promise<{ delivered: number; offline: number; publishErrors: number }> {
  let delivered = 0;
  let offline = 0;
  let publishErrors = 0;
  await Promise.all(
    changes.map((c) =>
      publishToHost(redis, c.hostId, { type: "bans", lists: c.lists }).then(
        (n) => (n > 0 ? delivered++ : offline++),
        () => publishErrors++,
      ),
    ),
  );
  return { delivered, offline, publishErrors };
}
