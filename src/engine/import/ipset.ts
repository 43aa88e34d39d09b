// ipset commands recorded from an executed script (`ipset create/add/flush/destroy`, and the
// lines of `ipset restore`): the sets become policy sets, so `-m set --match-set` and
// `-j SET` of the same script can refer to them. A text import never sees these (the
// contents of a set are not in an iptables-save dump), so there the match stays refused.
import { isIPv4, isIPv6 } from "node:net";
import { parsePrefix } from "../net/address.ts";
import { Name } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import type { LineResult, PolicyDraft } from "./draft.ts";

/** The policy name of an ipset name (ipset allows '-', '.', ...; policy names do not). */
export function setPolicyName(ipsetName: string): string {
  if (Name.safeParse(ipsetName).success) return ipsetName;
  let n = ipsetName.replace(/[^A-Za-z0-9_]/g, "_");
  if (!/^[A-Za-z]/.test(n)) n = `s_${n}`;
  return n.slice(0, 32);
}

/** The policy set an ipset name refers to, when the recorded commands created it. */
export function knownSet(draft: PolicyDraft, ipsetName: string): string | undefined {
  const name = setPolicyName(ipsetName);
  return draft.sets[name] ? name : undefined;
}

const COMMANDS: Record<string, string> = {
  create: "create",
  n: "create",
  "-N": "create",
  add: "add",
  a: "add",
  "-A": "add",
  del: "del",
  "-D": "del",
  flush: "flush",
  "-F": "flush",
  destroy: "destroy",
  x: "destroy",
  "-X": "destroy",
  list: "show",
  "-L": "show",
  save: "show",
  "-S": "show",
  test: "show",
  "-T": "show",
  version: "show",
  "-v": "show",
  restore: "restore",
  "-R": "restore",
  swap: "swap",
  "-W": "swap",
  rename: "rename",
  "-E": "rename",
};

/** One ipset command (its words after `ipset`); `input` is what `ipset restore` read. */
export function applyIpset(words: readonly string[], draft: PolicyDraft): LineResult {
  // Global flags may come anywhere: -exist (-!), -quiet, -output ...
  const args = words.filter((w) => !/^-(exist|!|q|quiet|n|name|r|resolve|s|sorted)$/.test(w));
  const cmd = COMMANDS[args[0] ?? ""];
  if (!cmd)
    fail("import_unsupported", `ipset ${args[0] ?? ""}: not an ipset command the importer knows`, args[0] ?? "ipset");
  const name = args[1];
  switch (cmd) {
    case "show":
      return { status: "skipped", reason: "ipset: only prints sets" };
    case "create":
      return create(args.slice(1), draft);
    case "add":
    case "del": {
      const set = requireSet(draft, name);
      const elem = element(args[2], set.interval === true, set.type);
      const rest = args.slice(3);
      if (rest.length > 0 && !(rest[0] === "timeout" && rest.length === 2)) {
        fail("import_unsupported", `ipset ${cmd} options ${rest.join(" ")}: only a plain element is imported`, rest[0]);
      }
      if (cmd === "add" && !set.elements.includes(elem)) set.elements.push(elem);
      if (cmd === "del") set.elements = set.elements.filter((e) => e !== elem);
      return { status: "imported", target: { kind: "path", path: `/sets/${setPolicyName(name!)}` } };
    }
    case "flush": {
      if (name === undefined) for (const s of Object.values(draft.sets)) s.elements = [];
      else requireSet(draft, name).elements = [];
      return { status: "skipped", reason: "ipset flush: empties the set(s) before the script fills them" };
    }
    case "destroy": {
      if (name === undefined) for (const k of Object.keys(draft.sets)) delete draft.sets[k];
      else delete draft.sets[setPolicyName(name)];
      return { status: "skipped", reason: "ipset destroy: removes the set(s) before the script creates them" };
    }
    default:
      fail(
        "import_unsupported",
        `ipset ${args[0]}: swapping, renaming and restore streams of sets are not imported`,
        args[0],
      );
  }
}

function requireSet(draft: PolicyDraft, name: string | undefined) {
  const set = name === undefined ? undefined : draft.sets[setPolicyName(name)];
  if (!set)
    fail("import_syntax", `ipset set ${name ?? "(none)"} was not created earlier in the script`, name ?? "ipset");
  return set;
}

function create(args: string[], draft: PolicyDraft): LineResult {
  const [name, type, ...opts] = args;
  if (!name || !type) fail("import_missing_argument", "ipset create needs a name and a type", "create");
  if (type !== "hash:ip" && type !== "hash:net") {
    fail("import_unsupported", `ipset type ${type}: only hash:ip and hash:net sets (of addresses) are imported`, type);
  }
  let family: "inet" | "inet6" = "inet";
  let timeout: number | undefined;
  let size: number | undefined;
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i]!;
    const v = opts[i + 1];
    if (o === "counters" || o === "comment" || o === "skbinfo" || o === "forceadd") continue;
    if (v === undefined) fail("import_missing_argument", `ipset create option ${o} needs a value`, o);
    i++;
    if (o === "family") {
      if (v !== "inet" && v !== "inet6") fail("import_invalid_value", `ipset family ${v}: inet or inet6`, v);
      family = v;
    } else if (o === "timeout") timeout = uint(v, o);
    else if (o === "maxelem") size = uint(v, o);
    else if (o === "hashsize" || o === "netmask" || o === "bucketsize" || o === "initval") {
      if (o === "netmask") fail("import_unsupported", "ipset netmask: sets of masked addresses are not imported", v);
    } else fail("import_unsupported", `ipset create option ${o} is not imported`, o);
  }
  const key = setPolicyName(name);
  const existing = draft.sets[key];
  if (existing) return { status: "skipped", reason: `ipset ${name} exists already (-exist)` };
  draft.sets[key] = {
    type: family === "inet" ? "ipv4_addr" : "ipv6_addr",
    elements: [],
    ...(type === "hash:net" ? { interval: true } : {}),
    ...(timeout ? { timeoutSeconds: timeout } : {}),
    ...(size ? { size } : {}),
  };
  return { status: "imported", target: { kind: "path", path: `/sets/${key}` } };
}

function uint(v: string, opt: string): number {
  if (!/^\d{1,9}$/.test(v)) fail("import_invalid_value", `ipset ${opt} must be a whole number, got ${v}`, v);
  return Number(v);
}

function element(text: string | undefined, interval: boolean, type: string): string {
  if (!text) fail("import_missing_argument", "ipset add needs an element", "add");
  const v6 = type === "ipv6_addr";
  const plain = v6 ? isIPv6(text) : isIPv4(text);
  if (plain) return v6 ? text.toLowerCase() : text;
  const p = parsePrefix(text);
  if (interval && p && p.family === (v6 ? "ipv6" : "ipv4")) return text.toLowerCase();
  fail(
    "import_invalid_value",
    `ipset element ${text} is not an ${v6 ? "IPv6" : "IPv4"} address${interval ? " or prefix" : ""}`,
    text,
  );
}
