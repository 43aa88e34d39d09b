// Transaction -> nft text, one command per line, in operation order. The same
// transaction always gives byte-identical text (no maps iterated, no timestamps);
// flags are written in a fixed order. Every name is checked with names.ts, every
// free text quoted with quote.ts, every element and rule body checked to be one
// token/statement, so nothing a user wrote can become a command of its own.

import { NftModelError } from "./errors.ts";
import { family as checkFamily, identifier, palisadeTable } from "./names.ts";
import { comment as quoteComment, ifname, seconds, uint } from "./quote.ts";
import { checkElementKey, checkElementValue } from "./element.ts";
import { singleStatementProblem } from "./lex.ts";
import type {
  Chain,
  Counter,
  Elements,
  NamedMap,
  NamedSet,
  NftObject,
  ObjectRef,
  Operation,
  Priority,
  Quota,
  Rule,
  SetElement,
  SetFlag,
  Table,
  Transaction,
} from "./transaction.ts";

const FLAG_ORDER: SetFlag[] = ["constant", "interval", "timeout", "dynamic"];
const PRIORITY_NAMES = new Set(["raw", "mangle", "dstnat", "filter", "security", "srcnat", "out"]);
const HOOKS = new Set(["prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"]);
const CHAIN_TYPES = new Set(["filter", "nat", "route"]);
const DATATYPE_RE = /^[a-z][a-z0-9_]{0,31}$/;
const TYPEOF_RE = /^[a-z][a-z0-9_]*( [a-z0-9_]+)*( \. [a-z][a-z0-9_]*( [a-z0-9_]+)*)*$/;
/** Elements per line inside `{ }`: keeps lines short for nft's error carets. */
const ELEMENTS_PER_LINE = 16;

export interface SerializeOptions {
  /** Refuse tables whose names do not start with "palisade" (default true). */
  palisadeOnly?: boolean;
}

function tableName(name: string, opts: SerializeOptions): string {
  return opts.palisadeOnly === false ? identifier(name, "table name") : palisadeTable(name);
}

function tablePath(o: NftObject | ObjectRef, opts: SerializeOptions): string {
  const fam = checkFamily(o.family);
  const t = o.kind === "table" ? o.name : o.table;
  return `${fam} ${tableName(t, opts)}`;
}

function priority(p: Priority): string {
  if (typeof p === "number") {
    if (!Number.isSafeInteger(p)) throw new NftModelError("invalid_chain", `chain priority ${p} is not an integer`);
    return String(p);
  }
  if (typeof p === "string") {
    if (!PRIORITY_NAMES.has(p))
      throw new NftModelError("invalid_chain", `unknown chain priority name ${JSON.stringify(p)}`);
    return p;
  }
  if (!PRIORITY_NAMES.has(p.base) || !Number.isSafeInteger(p.offset)) {
    throw new NftModelError("invalid_chain", `invalid chain priority ${JSON.stringify(p)}`);
  }
  return p.offset === 0 ? p.base : `${p.base} ${p.offset < 0 ? "-" : "+"} ${Math.abs(p.offset)}`;
}

/** `{ a ; b ; }` or "" when there is nothing to say. */
function block(parts: string[]): string {
  return parts.length === 0 ? "" : ` { ${parts.map((p) => `${p} ;`).join(" ")} }`;
}

function tableSpec(t: Table): string {
  const parts = t.comment ? [`comment ${quoteComment(t.comment)}`] : [];
  for (const h of t.ctHelpers ?? []) {
    identifier(h.name, "ct helper name");
    if (!/^[A-Za-z0-9.-]{1,15}$/.test(h.type))
      throw new NftModelError(
        "invalid_rule",
        `ct helper ${h.name}: type ${JSON.stringify(h.type)} is not a helper name`,
      );
    if (h.protocol !== "tcp" && h.protocol !== "udp")
      throw new NftModelError("invalid_rule", `ct helper ${h.name}: protocol must be tcp or udp`);
    // l3proto inet: one object serves both families of the inet table.
    parts.push(`ct helper ${h.name} { type "${h.type}" protocol ${h.protocol} ; l3proto inet ; }`);
  }
  return block(parts);
}

function chainSpec(c: Chain): string {
  identifier(c.name, "chain name");
  const parts: string[] = [];
  const base = c.type !== undefined || c.hook !== undefined || c.priority !== undefined;
  if (base) {
    if (!c.type || !c.hook || c.priority === undefined) {
      throw new NftModelError("invalid_chain", `base chain ${c.name} needs type, hook and priority together`);
    }
    if (!CHAIN_TYPES.has(c.type))
      throw new NftModelError("invalid_chain", `chain ${c.name}: unknown type ${JSON.stringify(c.type)}`);
    if (!HOOKS.has(c.hook))
      throw new NftModelError("invalid_chain", `chain ${c.name}: unknown hook ${JSON.stringify(c.hook)}`);
    let spec = `type ${c.type} hook ${c.hook}`;
    if (c.device !== undefined) spec += ` device ${ifname(c.device)}`;
    spec += ` priority ${priority(c.priority)}`;
    parts.push(spec);
    if (c.policy !== undefined) {
      if (c.policy !== "accept" && c.policy !== "drop")
        throw new NftModelError("invalid_chain", `chain ${c.name}: policy must be accept or drop`);
      parts.push(`policy ${c.policy}`);
    }
  } else if (c.policy !== undefined || c.device !== undefined) {
    throw new NftModelError(
      "invalid_chain",
      `chain ${c.name}: policy and device need a base chain (type, hook, priority)`,
    );
  }
  if (c.comment) parts.push(`comment ${quoteComment(c.comment)}`);
  return block(parts);
}

function element(e: SetElement, setName: string, isMap: boolean, keysOnly: boolean): string {
  const key = checkElementKey(e.key, setName);
  // Fast path for the bulk case (plain keys of a set): no options to render.
  if (keysOnly || (!isMap && e.timeout === undefined && e.counter === undefined && !e.comment && e.value === undefined))
    return key;
  let out = key;
  if (e.timeout !== undefined) out += ` timeout ${seconds(e.timeout, `timeout of ${e.key}`)}`;
  if (e.counter)
    out += ` counter packets ${uint(e.counter.packets, "packets")} bytes ${uint(e.counter.bytes, "bytes")}`;
  if (e.comment) out += ` comment ${quoteComment(e.comment)}`;
  if (isMap) {
    if (e.value === undefined)
      throw new NftModelError("invalid_element", `element ${e.key} of map ${setName} has no value`);
    out += ` : ${checkElementValue(e.value, setName)}`;
  } else if (e.value !== undefined) {
    throw new NftModelError("invalid_element", `element ${e.key} of set ${setName} has a value; only maps have values`);
  }
  return out;
}

function elementList(list: SetElement[], setName: string, isMap: boolean, keysOnly: boolean): string {
  if (list.length <= ELEMENTS_PER_LINE)
    return `{ ${list.map((e) => element(e, setName, isMap, keysOnly)).join(", ")} }`;
  let out = "{\n\t";
  for (let i = 0; i < list.length; i++) {
    if (i > 0) out += i % ELEMENTS_PER_LINE === 0 ? ",\n\t" : ", ";
    out += element(list[i]!, setName, isMap, keysOnly);
  }
  return out + "\n}";
}

function dataType(t: string, what: string): string {
  if (!DATATYPE_RE.test(t))
    throw new NftModelError("invalid_set", `${what}: ${JSON.stringify(t)} is not an nft data type name`);
  return t;
}

function setSpec(s: NamedSet | NamedMap): string {
  identifier(s.name, `${s.kind} name`);
  const parts: string[] = [];
  const isMap = s.kind === "map";
  const mapSuffix = isMap ? ` : ${dataType((s as NamedMap).map, `map ${s.name} value type`)}` : "";
  if ((s.type === undefined) === (s.typeof === undefined)) {
    throw new NftModelError("invalid_set", `${s.kind} ${s.name} needs exactly one of type or typeof`);
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (types.length === 0) throw new NftModelError("invalid_set", `${s.kind} ${s.name} has an empty type`);
    parts.push(`type ${types.map((t) => dataType(t, `${s.kind} ${s.name} type`)).join(" . ")}${mapSuffix}`);
  } else {
    if (!TYPEOF_RE.test(s.typeof!))
      throw new NftModelError(
        "invalid_set",
        `${s.kind} ${s.name}: typeof ${JSON.stringify(s.typeof)} is not a plain expression`,
      );
    parts.push(`typeof ${s.typeof}${mapSuffix}`);
  }
  if (s.flags && s.flags.length > 0) {
    for (const f of s.flags)
      if (!FLAG_ORDER.includes(f))
        throw new NftModelError("invalid_set", `${s.kind} ${s.name}: unknown flag ${JSON.stringify(f)}`);
    parts.push(`flags ${FLAG_ORDER.filter((f) => s.flags!.includes(f)).join(",")}`);
  }
  if (s.timeout !== undefined) parts.push(`timeout ${seconds(s.timeout, `timeout of ${s.name}`)}`);
  if (s.size !== undefined) {
    if (!Number.isSafeInteger(s.size) || s.size <= 0)
      throw new NftModelError("invalid_set", `${s.kind} ${s.name}: size must be a positive integer`);
    parts.push(`size ${s.size}`);
  }
  if (s.counter) parts.push("counter");
  if (s.policy !== undefined) {
    if (s.policy !== "performance" && s.policy !== "memory")
      throw new NftModelError("invalid_set", `${s.kind} ${s.name}: policy must be performance or memory`);
    parts.push(`policy ${s.policy}`);
  }
  if (s.autoMerge) parts.push("auto-merge");
  if (s.comment) parts.push(`comment ${quoteComment(s.comment)}`);
  if (s.elements && s.elements.length > 0) parts.push(`elements = ${elementList(s.elements, s.name, isMap, false)}`);
  return block(parts);
}

function counterSpec(c: Counter): string {
  identifier(c.name, "counter name");
  const parts: string[] = [];
  if (c.packets !== undefined || c.bytes !== undefined) {
    parts.push(`packets ${uint(c.packets ?? 0, "packets")} bytes ${uint(c.bytes ?? 0, "bytes")}`);
  }
  if (c.comment) parts.push(`comment ${quoteComment(c.comment)}`);
  return block(parts);
}

function quotaSpec(q: Quota): string {
  identifier(q.name, "quota name");
  if (q.mode !== "over" && q.mode !== "until")
    throw new NftModelError("invalid_number", `quota ${q.name}: mode must be over or until`);
  let spec = `${q.mode} ${uint(q.bytes, `quota ${q.name} bytes`)} bytes`;
  if (q.used !== undefined) spec += ` used ${uint(q.used, `quota ${q.name} used`)} bytes`;
  const parts = [spec];
  if (q.comment) parts.push(`comment ${quoteComment(q.comment)}`);
  return block(parts);
}

function ruleText(r: Rule, opts: SerializeOptions): string {
  identifier(r.chain, "chain name");
  const problem = singleStatementProblem(r.body);
  if (problem)
    throw new NftModelError(
      "invalid_rule",
      `rule in chain ${r.chain} ${problem}: ${JSON.stringify(r.body.slice(0, 80))}`,
    );
  return `add rule ${tablePath(r, opts)} ${r.chain} ${r.body.trim()}${r.comment ? ` comment ${quoteComment(r.comment)}` : ""}`;
}

function addText(o: NftObject, opts: SerializeOptions): string {
  switch (o.kind) {
    case "table":
      return `add table ${tablePath(o, opts)}${tableSpec(o)}`;
    case "chain":
      return `add chain ${tablePath(o, opts)} ${o.name}${chainSpec(o)}`;
    case "rule":
      return ruleText(o, opts);
    case "set":
    case "map":
      return `add ${o.kind} ${tablePath(o, opts)} ${o.name}${setSpec(o)}`;
    case "element":
      return elementsText("add", o, opts);
    case "counter":
      return `add counter ${tablePath(o, opts)} ${o.name}${counterSpec(o)}`;
    case "quota":
      return `add quota ${tablePath(o, opts)} ${o.name}${quotaSpec(o)}`;
    default:
      throw new NftModelError("invalid_rule", `unknown object kind ${JSON.stringify((o as { kind: unknown }).kind)}`);
  }
}

/** Maps need their values to add elements but only keys to delete them. */
function elementsText(verb: "add" | "delete", e: Elements, opts: SerializeOptions, isMap?: boolean): string {
  identifier(e.set, "set name");
  if (e.elements.length === 0)
    throw new NftModelError("invalid_element", `${verb} element on ${e.set} with no elements`);
  const map = isMap ?? e.elements.some((x) => x.value !== undefined);
  return `${verb} element ${tablePath(e, opts)} ${e.set} ${elementList(e.elements, e.set, map, verb === "delete")}`;
}

function refText(_verb: "flush" | "delete", o: ObjectRef): string {
  return o.kind === "table" ? "" : ` ${identifier(o.name, `${o.kind} name`)}`;
}

export function serializeOperation(op: Operation, opts: SerializeOptions = {}): string {
  switch (op.verb) {
    case "add":
      return addText(op.object, opts);
    case "flush":
      return `flush ${op.object.kind} ${tablePath(op.object, opts)}${refText("flush", op.object)}`;
    case "delete":
      if (op.object.kind === "element") return elementsText("delete", op.object, opts);
      return `delete ${op.object.kind} ${tablePath(op.object, opts)}${refText("delete", op.object)}`;
  }
}

/** The whole transaction as nft text, ending with a newline ("" for an empty transaction). */
export function serialize(tx: Transaction, opts: SerializeOptions = {}): string {
  if (tx.ops.length === 0) return "";
  return tx.ops.map((op) => serializeOperation(op, opts)).join("\n") + "\n";
}
