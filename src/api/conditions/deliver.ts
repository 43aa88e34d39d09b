// A flip goes to each picked host's channel on the per-host bus; the replica holding the
// agent's stream sends it.
import type { Redis } from "ioredis";
import { publishToHosts } from "../host-bus.ts";
import type { HostConditionChange } from "./store.ts";

export const publishConditionChanges = (redis: Redis, changes: HostConditionChange[]) =>
  publishToHosts(redis, changes, (c) => ({ type: "conditions", values: c.values }));
