// A flip goes to each picked host's channel on the per-host bus; the replica holding the
// agent's stream sends it. A host with no stream up gets its whole state after its next Hello.
import type { Redis } from "ioredis";
import { publishToHost } from "../host-bus.ts";
import type { HostConditionChange } from "./store.ts";

export async function publishConditionChanges(
  redis: Redis,
  changes: HostConditionChange[],
): Promise<{ delivered: number; offline: number; publishErrors: number }> {
  let delivered = 0;
  let offline = 0;
  let publishErrors = 0;
  await Promise.all(
    changes.map((c) =>
      publishToHost(redis, c.hostId, { type: "conditions", values: c.values }).then(
        (n) => (n > 0 ? delivered++ : offline++),
        () => publishErrors++,
      ),
    ),
  );
  return { delivered, offline, publishErrors };
}
