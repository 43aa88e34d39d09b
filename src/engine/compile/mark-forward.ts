// Which backends a mark forward (mfw) sends its traffic to, decided once for both
// compilers: with every preference 0 it is failover, all of it to the `active` backend;
// otherwise the backends with a preference above 0 share it by that weight (those with 0
// get none). Each compiler writes the result in its own syntax and reports an `active`
// index past the list under its own error code.
import type { Policy } from "../policy/index.ts";

type MarkForward = Policy["forwarding"]["markForwards"][number];

export interface WeightedBackend {
  address: string;
  port?: number;
  weight: number;
}

/** The backends and their weights; undefined when failover's `active` names no backend. */
export function markForwardBackends(mf: MarkForward): WeightedBackend[] | undefined {
  const balanced = mf.backends.filter((b) => b.preference > 0);
  if (balanced.length > 0) return balanced.map((b) => ({ address: b.address, port: b.port, weight: b.preference }));
  const active = mf.backends[mf.active];
  return active ? [{ address: active.address, port: active.port, weight: 1 }] : undefined;
}
