// The shapes of `nft -j` output (nft 1.0.6, json_schema_version 1) that the driver
// relies on, as zod schemas. Only fields we read are declared; unknown fields pass
// through, so a newer nft adding fields does not break reading.

import * as z from "zod";

const num = z.number();

export const CounterValues = z.object({ packets: num, bytes: num });

export const JTable = z.looseObject({
  family: z.string(),
  name: z.string(),
  handle: num.optional(),
  comment: z.string().optional(),
});

export const JChain = z.looseObject({
  family: z.string(),
  table: z.string(),
  name: z.string(),
  handle: num.optional(),
  type: z.string().optional(),
  hook: z.string().optional(),
  prio: num.optional(),
  policy: z.string().optional(),
  comment: z.string().optional(),
});

export const JRule = z.looseObject({
  family: z.string(),
  table: z.string(),
  chain: z.string(),
  handle: num.optional(),
  comment: z.string().optional(),
  expr: z.array(z.unknown()),
});

/** An element value: address, port, prefix, range, concatenation, or a map's verdict. */
export type JValue = string | number | { [k: string]: unknown } | JValue[];
export const JValueSchema: z.ZodType<JValue> = z.lazy(() =>
  z.union([z.string(), num, z.array(JValueSchema), z.record(z.string(), z.unknown())]),
);

export const JElemDetail = z.looseObject({
  val: JValueSchema,
  counter: CounterValues.optional(),
  timeout: num.optional(),
  expires: num.optional(),
  comment: z.string().optional(),
});

/** A set element is a bare value or `{elem: {...}}`; a map element is `[key, value]`. */
export const JElem = z.union([z.object({ elem: JElemDetail }), JValueSchema]);

export const JSet = z.looseObject({
  family: z.string(),
  table: z.string(),
  name: z.string(),
  handle: num.optional(),
  type: z.union([z.string(), z.array(z.string())]),
  map: z.union([z.string(), z.array(z.string())]).optional(),
  flags: z.array(z.string()).optional(),
  timeout: num.optional(),
  size: num.optional(),
  comment: z.string().optional(),
  elem: z.array(z.unknown()).optional(),
  stmt: z.array(z.unknown()).optional(),
});

export const JCounter = z.looseObject({
  family: z.string(),
  table: z.string(),
  name: z.string(),
  handle: num.optional(),
  packets: num,
  bytes: num,
  comment: z.string().optional(),
});

export const JQuota = z.looseObject({
  family: z.string(),
  table: z.string(),
  name: z.string(),
  handle: num.optional(),
  bytes: num,
  used: num,
  inv: z.boolean().optional(),
  comment: z.string().optional(),
});

/**
 * A conntrack helper object (`{"ct helper": {...}}`); `type` is the kernel's helper name.
 * Without /etc/protocols (netbase, which nftables only recommends: a slim image) nft prints
 * the protocol as its number, 6 rather than "tcp".
 */
export const JCtHelper = z.looseObject({
  family: z.string(),
  table: z.string(),
  name: z.string(),
  handle: num.optional(),
  type: z.string().optional(),
  protocol: z.union([z.string(), num]).optional(),
  l3proto: z.union([z.string(), num]).optional(),
});

export const JMetainfo = z.looseObject({ version: z.string(), json_schema_version: num.optional() });

/** The top-level document: `{"nftables": [ {metainfo}, {table}, {chain}, ... ]}`. */
export const JDocument = z.object({ nftables: z.array(z.record(z.string(), z.unknown())) });

export type JTable = z.infer<typeof JTable>;
export type JChain = z.infer<typeof JChain>;
export type JRule = z.infer<typeof JRule>;
export type JSet = z.infer<typeof JSet>;
export type JCounter = z.infer<typeof JCounter>;
export type JQuota = z.infer<typeof JQuota>;
