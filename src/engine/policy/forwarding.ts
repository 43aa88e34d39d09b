// Kernel port forwarding (seed: kernel-port-forwarding): PORTFW, AUTOFW -h, FWMARK/mfw.
// Compiled to DNAT in the nat prerouting hook plus accept rules in forward.
import * as z from "zod";
import { Address, Comment, Interface, Port, U32, deferred } from "./primitives.ts";
import { Match } from "./match.ts";

export const Backend = deferred(() =>
  z.strictObject({
    address: Address,
    /** Defaults to the listening port. */
    port: Port.optional(),
    /** PORTFW preference: relative share of new connections (1 each = round robin). */
    weight: z.number().int().min(1).max(1000).default(1),
  }),
);

/** PORTFW: protocol + local address/port -> weighted backends. */
export const PortForward = deferred(() =>
  z.strictObject({
    protocol: z.enum(["tcp", "udp"]),
    /** Local (external) address; omitted = any address of the host. */
    address: Address.optional(),
    port: Port,
    iif: Interface.optional(),
    backends: z.array(Backend).min(1).max(256),
    /** Masquerade the forwarded connections so replies come back through this host. */
    masquerade: z.boolean().default(false),
    comment: Comment.optional(),
  }),
);

/** AUTOFW with -h: a port range forwarded to one hidden host. */
export const RangeForward = deferred(() =>
  z.strictObject({
    protocol: z.enum(["tcp", "udp"]),
    ports: z.string().regex(/^\d{1,5}-\d{1,5}$/, 'must be a range "low-high"'),
    to: Address,
    iif: Interface.optional(),
    masquerade: z.boolean().default(false),
    comment: Comment.optional(),
  }),
);

export const MarkBackend = deferred(() =>
  z.strictObject({
    address: Address,
    port: Port.optional(),
    /** mfw preference: 0 = no scheduling (failover order); >0 = weighted share. */
    preference: z.number().int().min(0).max(1000).default(0),
  }),
);

/** FWMARK (mfw): mark traffic by source criteria, forward each mark to its backends. */
export const MarkForward = deferred(() =>
  z.strictObject({
    mark: U32.refine((m) => m !== 0, "mark 0 means unmarked; use 1 or more"),
    /** Which packets get this mark (ipchains -m); compiled into a mark rule in prerouting. */
    match: Match,
    backends: z.array(MarkBackend).min(1).max(256),
    /**
     * All preferences 0: failover. `active` names the backend in use (mfw -S moves it forward);
     * `healthCheck` lets the agent fail over by itself when the active backend stops answering.
     */
    active: z.number().int().min(0).max(255).default(0),
    healthCheck: z
      .strictObject({ port: Port, intervalSeconds: z.number().int().min(1).max(3600).default(5) })
      .optional(),
    masquerade: z.boolean().default(false),
    comment: Comment.optional(),
  }),
);

export const Forwarding = deferred(() =>
  z.strictObject({
    portForwards: z.array(PortForward).max(4096).default([]),
    rangeForwards: z.array(RangeForward).max(4096).default([]),
    markForwards: z.array(MarkForward).max(4096).default([]),
  }),
);
export type Forwarding = z.infer<typeof Forwarding>;
