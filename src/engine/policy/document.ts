// The policy document: one immutable ruleset version. This schema is the contract of the
// whole product (API bodies, stored versions, importer output, compiler input).
import * as z from "zod";
import { Comment, Name, Port, deferred } from "./primitives.ts";
import { Match } from "./match.ts";
import { Action } from "./action.ts";
import { AccountingDef, CounterDef, QuotaDef, SetDef } from "./objects.ts";
import { Protections } from "./protections.ts";
import { Forwarding } from "./forwarding.ts";

export const HOOKS = ["prerouting", "input", "forward", "output", "postrouting"] as const;
/**
 * The iptables table a chain belongs to. nftables has no fixed tables, but the table decides
 * the chain type and priority, and which targets are allowed (IPMARK: mangle; RAWSNAT: raw/rawpost).
 * `security` is the kernel's table after filter (iptable_security, nft priority security), where
 * SELinux labelling rules live; it holds filter verdicts, no SECMARK (not in the schema).
 */
export const CHAIN_TABLES = ["filter", "nat", "mangle", "raw", "rawpost", "security"] as const;
/**
 * The hooks each table has in the kernel: its builtin chains (filter INPUT is hook input).
 * The validator, the iptables renderer and the importer all read this one table.
 */
export const TABLE_HOOKS: Readonly<Record<(typeof CHAIN_TABLES)[number], readonly (typeof HOOKS)[number][]>> = {
  filter: ["input", "forward", "output"],
  nat: ["prerouting", "input", "output", "postrouting"],
  mangle: ["prerouting", "input", "forward", "output", "postrouting"],
  raw: ["prerouting", "output"],
  rawpost: ["postrouting"],
  security: ["input", "forward", "output"],
};

export const Rule = z.strictObject({
  comment: Comment.optional(),
  match: Match.optional(),
  action: Action,
  /** Count packets/bytes of this rule (an anonymous counter in the rendered rule). */
  counter: z.boolean().optional(),
});
export type Rule = z.infer<typeof Rule>;

export const Chain = z.strictObject({
  table: z.enum(CHAIN_TABLES).default("filter"),
  /** Base chains name a hook; chains without one are user chains reached by jump/goto. */
  hook: z.enum(HOOKS).optional(),
  /** Default verdict of a base chain. */
  policy: z.enum(["accept", "drop"]).optional(),
  comment: Comment.optional(),
  rules: z.array(Rule).max(100_000).default([]),
});
export type Chain = z.infer<typeof Chain>;

export const Failsafe = deferred(() =>
  z.strictObject({
    /**
     * Keep the agent's own connection to the API open whatever the rules say (like Calico's
     * failsafe ports). Turning it off is an explicit opt-out.
     */
    enabled: z.boolean().default(true),
    /** TCP ports of the API the agent talks to; the agent also passes the exact endpoint at apply time. */
    ports: z.array(Port).min(1).max(16).default([50051]),
  }),
);

export const Policy = z.strictObject({
  description: Comment.optional(),
  failsafe: Failsafe.default({ enabled: true, ports: [50051] }),
  sets: z.record(Name, SetDef).default({}),
  counters: z.record(Name, CounterDef).default({}),
  quotas: z.record(z.string(), QuotaDef).default({}),
  accounting: z.record(Name, AccountingDef).default({}),
  chains: z.record(Name, Chain).default({}),
  protections: Protections.default({}),
  forwarding: Forwarding.default({ portForwards: [], rangeForwards: [], markForwards: [] }),
});
/** A validated policy with defaults filled in. */
export type Policy = z.infer<typeof Policy>;
/** A policy as a user may write it (defaults optional). */
export type PolicyInput = z.input<typeof Policy>;
