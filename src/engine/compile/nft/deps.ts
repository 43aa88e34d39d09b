// Types the compiler modules share from the rest of the engine. The policy module exports
// some schemas without a type of the same name; their inferred types are spelled here once.
import type { z } from "zod";
import type * as P from "../../policy/index.ts";

export type { Path } from "../../diagnostics.ts";
export type { Policy } from "../../policy/index.ts";
export type PortForward = z.infer<typeof P.PortForward>;
export type RangeForward = z.infer<typeof P.RangeForward>;
export type MarkForward = z.infer<typeof P.MarkForward>;
export type QuotaMatch = z.infer<typeof P.QuotaMatch>;
export type RecentMatch = z.infer<typeof P.RecentMatch>;
export type MeterMatch = z.infer<typeof P.MeterMatch>;
export type ConnlimitMatch = z.infer<typeof P.ConnlimitMatch>;
