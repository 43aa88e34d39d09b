// iptables chain names -> policy chain keys. Builtin chains become base chains named for
// their hook (filter INPUT -> `input`; other tables prefix the table: nat PREROUTING ->
// `nat_prerouting`); user chains keep their name, sanitised to the schema's Name rule.
import { NAME_RE, TABLE_HOOKS, type CHAIN_TABLES, type HOOKS } from "../policy/index.ts";
import { isIdentifier } from "../nft/names.ts";

export type Table = (typeof CHAIN_TABLES)[number];
export type Hook = (typeof HOOKS)[number];

export function isTable(name: string): name is Table {
  return Object.hasOwn(TABLE_HOOKS, name);
}

/** The hook of a builtin chain (its name is the hook's, upper case: nat PREROUTING), or undefined. */
export function builtinHook(table: Table, chain: string): Hook | undefined {
  return TABLE_HOOKS[table].find((h) => h.toUpperCase() === chain);
}

/** Policy key of a builtin chain. */
export function baseChainKey(table: Table, hook: Hook): string {
  return table === "filter" ? hook : `${table}_${hook}`;
}

/** A schema-valid key for a user chain name; `taken` tells which keys are already used. */
export function userChainKey(name: string, table: Table, taken: (key: string) => boolean): string {
  let key = name.replace(/[^A-Za-z0-9_]/g, "_");
  if (!/^[A-Za-z]/.test(key)) key = `c_${key}`;
  key = key.slice(0, 32);
  // A name nft reads as a keyword (TCP, reject) cannot be written as a chain name there.
  if (NAME_RE.test(key) && isIdentifier(key) && !taken(key)) return key;
  // Keywords and clashes (a nat chain with a filter chain's name, or with a base chain key) get the table prefix, then a number.
  const prefixed = `${table}_${key}`.slice(0, 32);
  if (!taken(prefixed)) return prefixed;
  for (let n = 2; ; n++) {
    const suffix = `_${n}`;
    const candidate = prefixed.slice(0, 32 - suffix.length) + suffix;
    if (!taken(candidate)) return candidate;
  }
}
