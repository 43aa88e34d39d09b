// Identifier rules for everything Palisade names in nft text: tables, chains, sets,
// maps, counters, quotas. A name is written bare (never quoted), so it must be a
// plain word the nft lexer cannot read as anything else.

import { NftModelError } from "./errors.ts";

/** nft accepts longer names; 63 keeps us far below NFT_NAME_MAXLEN (256) and readable. */
export const IDENTIFIER_RE = /^[A-Za-z][A-Za-z0-9_]{0,62}$/;

/** Every table Palisade creates starts with this; the driver refuses to touch others. */
export const PALISADE_TABLE_PREFIX = "palisade";

export const FAMILIES = ["inet", "ip", "ip6", "arp", "bridge", "netdev"] as const;
export type Family = (typeof FAMILIES)[number];

// Words the nft 1.0.6 lexer reads as keywords where we write names (measured: each was
// tried as a set and chain name with `nft -c`; these failed). Many protocol field names
// (saddr, dport, state...) are context keywords and work as names, so they are allowed.
const RESERVED = new Set([
  "accept",
  "drop",
  "continue",
  "return",
  "jump",
  "goto",
  "queue",
  "handle",
  "index",
  "position",
  "table",
  "chain",
  "set",
  "map",
  "element",
  "rule",
  "counter",
  "quota",
  "limit",
  "log",
  "comment",
  "flowtable",
  "meter",
  "ruleset",
  "define",
  "include",
  "redefine",
  "undefine",
  "elements",
  "type",
  "typeof",
  "flags",
  "timeout",
  "size",
  "policy",
  "hook",
  "priority",
  "device",
  "devices",
  "ip",
  "ip6",
  "inet",
  "arp",
  "bridge",
  "netdev",
  "over",
  "until",
  "used",
  "packets",
  "bytes",
  "ct",
  "meta",
  "tcp",
  "udp",
  "icmp",
  "vmap",
  "reject",
  "ether",
  "vlan",
  "fib",
  "numgen",
  "ipsec",
  "synproxy",
  "secmark",
  "tunnel",
  "mark",
  "snat",
  "dnat",
  "masquerade",
  "redirect",
  "notrack",
  "flow",
  "monitor",
  "export",
  "import",
  "reset",
  "list",
  "add",
  "delete",
  "insert",
  "replace",
  "create",
  "flush",
  "rename",
  "describe",
  "get",
  "interval",
  "dynamic",
  "constant",
  "hour",
  "day",
  "iif",
  "oif",
  "iifname",
  "oifname",
  "skuid",
  "skgid",
  "ecn",
  "frag",
]);

/** A word nft reads as a keyword where a name is written (whatever its case), so it cannot be a name. */
export function isNftKeyword(name: string): boolean {
  return RESERVED.has(name.toLowerCase());
}

export function isIdentifier(name: string): boolean {
  return IDENTIFIER_RE.test(name) && !isNftKeyword(name);
}

/** Return the name unchanged, or throw invalid_identifier naming what it was meant for. */
export function identifier(name: string, what = "name"): string {
  if (typeof name !== "string" || !IDENTIFIER_RE.test(name)) {
    throw new NftModelError(
      "invalid_identifier",
      `${what} ${JSON.stringify(name)} is not a valid nft identifier: use a letter followed by up to 62 letters, digits or underscores`,
    );
  }
  if (isNftKeyword(name)) {
    throw new NftModelError(
      "invalid_identifier",
      `${what} ${JSON.stringify(name)} is an nft keyword; choose another name`,
    );
  }
  return name;
}

export function family(f: string): Family {
  if (!(FAMILIES as readonly string[]).includes(f)) {
    throw new NftModelError("invalid_family", `family ${JSON.stringify(f)} is not one of ${FAMILIES.join(", ")}`);
  }
  return f as Family;
}

/**
 * The agent's ban lists (engine/bans): changed element by element, never by an apply, so
 * they are not one of the policy's tables: snapshots, restores, drift and telemetry skip it.
 */
export const BANS_TABLE = "palisade_bans";

/** A table of the policy's (snapshot, restore, drift, telemetry): palisade*, but not the ban table. */
export function isPalisadeTable(name: string): boolean {
  return name.startsWith(PALISADE_TABLE_PREFIX) && IDENTIFIER_RE.test(name) && name !== BANS_TABLE;
}

/** A table name that is both a valid identifier and one of Palisade's own. */
export function palisadeTable(name: string): string {
  identifier(name, "table name");
  if (name === BANS_TABLE)
    throw new NftModelError("foreign_table", `table "${BANS_TABLE}" is the agent's ban table; a policy cannot use it`);
  if (!name.startsWith(PALISADE_TABLE_PREFIX)) {
    throw new NftModelError(
      "foreign_table",
      `table ${JSON.stringify(name)} is not a Palisade table: Palisade only creates and changes tables whose names start with "${PALISADE_TABLE_PREFIX}"`,
    );
  }
  return name;
}
