// ipsets as policy sets. Their contents come from ipset commands (recorded from an executed
// script, or written in a text script), or from `ipset save` text (`palisade import --ipset
// FILE`, or its lines inside an iptables-save input). A rule that names a set the input does
// not create (`-m set --match-set NAME src`, `-j SET --add-set NAME src`) is refused
// (import_ipset_contents_missing), as iptables-restore refuses it: "Set NAME doesn't exist".
import { warning, type Diagnostic } from "../diagnostics.ts";
import {
  compressIpv6,
  expandIpv6,
  hasHostBits,
  intToIpv4,
  ipv4Network,
  ipv4ToInt,
  parsePrefix,
  prefixNetwork,
  zoneIdProblem,
} from "../net/address.ts";
import { isIPv4 } from "../net/ip-syntax.ts";
import { isIdentifier } from "../nft/names.ts";
import { reservedSetName } from "../validate/names.ts";
import { MAX_SET_ELEMENTS, MAX_SET_SIZE, Name, tupleFields } from "../policy/index.ts";
import { MAX_TOTAL_SET_ELEMENTS } from "../validate/limits.ts";
import type { Collector } from "./collect.ts";
import { fail } from "./cursor.ts";
import type { LineResult, PolicyDraft } from "./draft.ts";
import type { RuleDraft } from "./rule-draft.ts";
import { splitSaveWords } from "./save-words.ts";
import { isImportedIpsetType, tupleElement, tupleSetOf } from "./ipset-tuple.ts";

/**
 * The policy name of an ipset name (ipset allows '-', '.', ...; policy names do not). A name
 * nft reads as a keyword (`drop`, as Spamhaus DROP lists are often called; `log`, `set`,
 * ...) cannot be a set name there, nor can the name of a set the agent fills itself
 * (`geo_v4_CN`, `condition_x`: validate/names.ts): it gets the prefix `ipset_`. Two ipset names that end
 * up as one policy name are refused where the second is used (import_conflict).
 */
export function setPolicyName(ipsetName: string): string {
  let n = ipsetName;
  if (!Name.safeParse(n).success) {
    n = ipsetName.replace(/[^A-Za-z0-9_]/g, "_");
    if (!/^[A-Za-z]/.test(n)) n = `s_${n}`;
    n = n.slice(0, 32);
  }
  return isIdentifier(n) && !reservedSetName(n) ? n : `ipset_${n}`.slice(0, 32);
}

/** Report text for an ipset whose policy name differs from its own (undefined: the same). */
function renamedNote(ipsetName: string, key: string): string | undefined {
  if (key === ipsetName) return undefined;
  const bare = key.startsWith("ipset_") ? key.slice("ipset_".length) : undefined;
  const why = bare === undefined ? undefined : !isIdentifier(bare) ? "an nft keyword" : reservedSetName(bare);
  return `ipset ${ipsetName} is the policy set ${key}${why ? ` (${bare} is ${why})` : ""}`;
}

/** How to give the importer a set's contents (the warning and the docs say the same). */
const SUPPLY_HINT =
  "give the output of `ipset save` with `palisade import --ipset FILE` (API: `ipsets`), or put its lines before the dump";

/**
 * The policy set a rule's `--match-set NAME DIR` or `-j SET --add-set NAME DIR` refers to. It
 * must come from the input: iptables-restore refuses either rule while the set does not exist
 * ("Set NAME doesn't exist."), and a match's members are what the rule tests.
 */
export function useSet(
  d: RuleDraft,
  ipsetName: string,
  dir: string,
  use: string,
  update: boolean,
  negated = false,
): string {
  const draft = d.policy;
  const unsupported = draft.unsupportedIpsets.get(ipsetName);
  if (unsupported) fail("import_unsupported", `${use} ${ipsetName}: ${unsupported}`, ipsetName);
  const tuple = tupleFields(d.policy.sets[setPolicyName(ipsetName)]?.type ?? "");
  const dirs = dir.split(",");
  if (tuple && !update && dirs.length === tuple.length && dirs.every((x) => x === "src" || x === "dst")) {
    // A tuple set: one direction per field (matches.ts makes it match.tupleSet).
  } else if (tuple)
    fail(
      "import_unsupported",
      `${use} ${ipsetName} ${dir}: ipset ${ipsetName} holds tuples of ${tuple.length} fields; ${update ? "adding to a tuple set (-j SET) is not imported" : `it is imported when looked up with ${tuple.length} directions (src,dst)`}`,
      dir,
    );
  else if (dir !== "src" && dir !== "dst") {
    fail(
      "import_unsupported",
      `${use} ${ipsetName} ${dir}: a set looked up with ${dir.split(",").length} directions holds tuples (hash:ip,port, hash:net,net, ...); only one-dimensional sets of addresses (src or dst) and the tuple sets hash:ip,port and hash:net,port are imported`,
      dir,
    );
  }
  const key = setPolicyName(ipsetName);
  const origin = draft.ipsets.get(key);
  if (origin && origin.ipset !== ipsetName) {
    fail(
      "import_conflict",
      `ipset ${ipsetName} and ipset ${origin.ipset} would both be the policy set ${key}; rename one`,
      ipsetName,
    );
  }
  // iptables-restore refuses a rule that names a set that does not exist (a match, and -j SET
  // as well: "Set NAME doesn't exist."). Declared empty, a match would test nothing the host's
  // set holds: a positive one matches no packet (`-j ACCEPT` of the management addresses
  // accepts none of them), a negated one every packet (`! --match-set allow src -j DROP` would
  // drop all input); a -j SET set would lose its type, timeout and members.
  const set = draft.sets[key];
  if (!origin || !set)
    fail(
      "import_ipset_contents_missing",
      `${negated ? "! " : ""}${use} ${ipsetName} ${dir}: the input does not hold ipset ${ipsetName}; ${
        update
          ? "iptables-restore refuses this rule while the set does not exist (Set doesn't exist), and its type, timeout and members are the host's"
          : `${
              negated
                ? "empty, the negated match is true for every packet, so this rule would act on all traffic"
                : "empty, the match is true for no packet, so this rule would act on none of the addresses the host's set holds"
            } (iptables-restore refuses it while the set does not exist)`
      }. Supply the set: ${SUPPLY_HINT} (for a set that is empty on the host too, its \`create\` line)`,
      ipsetName,
    );
  // An ipset has one family; iptables matches only inet sets, ip6tables only inet6 ones.
  const family = d.family === "ipv6" ? "ipv6" : "ipv4";
  const setFamily = set.type.startsWith("ipv6") ? "ipv6" : "ipv4";
  if (setFamily !== family)
    fail(
      "import_conflict",
      `${use} ${ipsetName}: the set holds ${setFamily === "ipv6" ? "IPv6 (family inet6)" : "IPv4 (family inet)"} addresses, but this is an ${family === "ipv6" ? "ip6tables" : "iptables"} rule`,
      ipsetName,
    );
  if (update && set.interval)
    fail(
      "import_unsupported",
      `${use} ${ipsetName}: the set is a hash:net (an interval set, for its prefixes) that this rule adds to; nftables refuses a set with both flags interval and dynamic (Operation not supported). Keep the set of plain addresses the rule adds to apart from the set of prefixes (hash:ip for the one -j SET fills)`,
      ipsetName,
    );
  return key;
}

/** Warning code: elements whose own timeout the policy replaced by the set's. */
const ELEMENT_TIMEOUT_DROPPED = "ipset_element_timeout_dropped";
/** Warning code: hash:net elements written with host bits (10.0.0.1/24), kept as their network. */
const ELEMENT_HOST_BITS = "ipset_element_host_bits";
/** What the elements a counted warning (its code) is about had. */
const COUNTED_WHAT = {
  [ELEMENT_TIMEOUT_DROPPED]: "had a timeout of their own",
  [ELEMENT_HOST_BITS]: "had host bits set",
} as const;

/**
 * One warning per set whose elements had their own timeouts (the policy gives each the set's),
 * and one per set whose elements had host bits (kept as their network).
 */
export function ipsetWarnings(draft: PolicyDraft): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [key, origin] of draft.ipsets) {
    const set = draft.sets[key];
    const counted = (c: { count: number; first: string }, what: keyof typeof COUNTED_WHAT, then: string) =>
      warning(
        ["sets", key],
        what,
        `ipset ${origin.ipset}: ${c.count} element${c.count === 1 ? "" : "s"} ${COUNTED_WHAT[what]} (first: ${c.first}); ${then}`,
      );
    if (origin.elementTimeouts && set)
      out.push(
        counted(
          origin.elementTimeouts,
          ELEMENT_TIMEOUT_DROPPED,
          `the policy has no per-element timeout, so when loaded ${
            set.timeoutSeconds === undefined
              ? "each is permanent (the set was created with timeout 0: permanent unless an element has its own)"
              : `each lives the set's timeout, ${set.timeoutSeconds} s`
          }`,
        ),
      );
    if (origin.elementHostBits && set)
      out.push(counted(origin.elementHostBits, ELEMENT_HOST_BITS, "ipset stores the network, and so does the policy"));
  }
  return out;
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

/**
 * How a command is run. `restore`: a line of `ipset restore` input (an `ipset save` file, its
 * lines in a dump, an executed script's `ipset restore`): a command ipset refuses stops the
 * restore there, so the rest of the file never reaches the host, and the import refuses the
 * line. Otherwise one `ipset` call of a script: a refused add or del of one element changes
 * nothing and the script goes on, so the line is skipped, with the reason. `exist`: `ipset
 * -exist restore` (the flag for every line).
 */
export interface IpsetMode {
  restore?: boolean;
  exist?: boolean;
  /** The state of one `ipset restore` across its lines (its -exist flag and batch). */
  session?: IpsetSession;
}

/**
 * One `ipset restore` as ipset 7.17 runs it (measured): a line's `-exist` stays on for every
 * later line of the restore; consecutive adds (or dels) to one set go to the kernel as one
 * batch, with the flag as it was at the batch's first line (`add a X` then `add a X -exist`
 * fails at the second line; `add a X -exist` then `add a X` passes). Another command, another
 * set or COMMIT ends a batch; comments and blank lines do not.
 */
export interface IpsetSession {
  exist: boolean;
  batch?: { cmd: string; set: string | undefined; exist: boolean };
}

export function ipsetSession(): IpsetSession {
  return { exist: false };
}

/** `-exist` as an ipset restore applies it to this line (see IpsetSession). */
function sessionExist(s: IpsetSession, own: boolean, cmd: string | undefined, set: string | undefined): boolean {
  if (own) s.exist = true;
  if (cmd !== "add" && cmd !== "del") {
    s.batch = undefined;
    return s.exist;
  }
  if (s.batch?.cmd !== cmd || s.batch.set !== set) s.batch = { cmd, set, exist: s.exist };
  return s.batch.exist;
}

/** ipset's default maxelem, and the most addresses the import expands one hash:ip element into (a /16). */
const DEFAULT_MAXELEM = 65536;
const MAX_EXPANDED = 65536;

/** One ipset command (its words after `ipset`, or a line of `ipset save`/`ipset restore` text). */
export function applyIpset(words: readonly string[], draft: PolicyDraft, mode: IpsetMode = {}): LineResult {
  // Global flags may come anywhere: -exist (-!), -quiet, -output ...
  const own = words.some((w) => w === "-exist" || w === "-!");
  const args = words.filter((w) => !/^-(exist|!|q|quiet|n|name|r|resolve|s|sorted)$/.test(w));
  const cmd = COMMANDS[args[0] ?? ""];
  const exist =
    mode.exist === true || (mode.restore && mode.session ? sessionExist(mode.session, own, cmd, args[1]) : own);
  if (!cmd)
    fail("import_unsupported", `ipset ${args[0] ?? ""}: not an ipset command the importer knows`, args[0] ?? "ipset");
  const name = args[1];
  switch (cmd) {
    case "show":
      return { status: "skipped", reason: "ipset: only prints sets" };
    case "create":
      return create(args.slice(1), draft, exist, mode.restore === true);
    case "add":
    case "del": {
      if (name !== undefined && draft.unsupportedIpsets.has(name))
        return { status: "skipped", reason: `element of ipset ${name}, whose type is not imported` };
      const set = requireSet(draft, name);
      const key = setPolicyName(name!);
      const origin = draft.ipsets.get(key)!;
      // The policy's limit for all sets together, checked before a prefix or range is expanded.
      const room = cmd === "add" ? MAX_TOTAL_SET_ELEMENTS - draft.ipsetElementsAdded : MAX_EXPANDED;
      // Defined exactly for a tuple set (tupleElement refuses what it cannot read).
      const tuple = tupleFields(set.type) ? tupleElement(args[2], set) : undefined;
      const { elems, masked } = tuple ?? elementsOf(args[2], set.interval === true, set.type, room);
      if (elems.length > room) fail("import_invalid_value", overBudget(args[2]!, elems.length), args[2]);
      // A prefix or range is expanded from its lowest address, so the null address is elems[0].
      if (!tuple && !set.interval && (elems[0] === "0.0.0.0" || elems[0] === "::"))
        fail(
          "import_invalid_value",
          `ipset ${cmd} ${name} ${args[2]}: ${elems.length > 1 ? `its first address is ${elems[0]}, ` : ""}the null address, which ipset refuses in a hash:ip set ("Null-valued element, cannot be stored in a hash type of set"; hash:net takes it)`,
          args[2],
        );
      // A tuple as written (its port range one element); its entries are one per port.
      // hash:ip,port refuses the null address, add and del, even with -exist ("Kernel error
      // received: Invalid argument"); hash:net,port takes 0.0.0.0 and :: (measured, ipset 7.17).
      if (tuple && origin.type === "hash:ip,port" && /^(0\.0\.0\.0|::),/.test(tuple.add.head))
        fail(
          "import_invalid_value",
          `ipset ${cmd} ${name} ${args[2]}: the null address, which ipset refuses in a hash:ip,port set ("Kernel error received: Invalid argument"; hash:net,port takes it)`,
          args[2],
        );
      const elem = tuple
        ? `${tuple.add.head}:${tuple.add.lo === tuple.add.hi ? tuple.add.lo : `${tuple.add.lo}-${tuple.add.hi}`}`
        : elems[0]!;
      const dropped = elementOptions(cmd, args.slice(3));
      // A set created with `timeout 0` takes element timeouts; its default (0) is permanent.
      const setTimeout = set.timeoutSeconds ?? (origin.permanentByDefault ? 0 : undefined);
      const own = cmd === "add" ? elementTimeout(args.slice(3), elem, setTimeout) : undefined;
      if (own !== undefined) {
        origin.elementTimeouts ??= { count: 0, first: `${elem} timeout ${own}` };
        origin.elementTimeouts.count++;
      }
      if (masked !== undefined && cmd === "add") {
        origin.elementHostBits ??= { count: 0, first: `${masked} is ${elem}` };
        origin.elementHostBits.count++;
      }
      const members = draft.members(key);
      // ipset refuses adding an element the set holds and deleting one it does not, unless
      // -exist ("Element cannot be added to the set: it's already added"; "... deleted from the
      // set: it's not added"); a range or prefix stops at the first such address.
      const clash = exist ? undefined : elems.find((e) => members.has(e) === (cmd === "add"));
      if (clash !== undefined) {
        const why =
          cmd === "add"
            ? `${clash} is in ipset ${name} already: ipset refuses the add without -exist ("Element cannot be added to the set: it's already added")`
            : `${clash} is not in ipset ${name}: ipset refuses the del without -exist ("Element cannot be deleted from the set: it's not added")`;
        if (!mode.restore && elems.length === 1)
          return { status: "skipped", reason: `${why}; the set stays as it was` };
        fail(
          "import_conflict",
          mode.restore
            ? `${why}, and ipset restore stops at this line: the lines after it never reach the host`
            : `${why} after ${elems.indexOf(clash)} of the ${elems.length} ${tuple ? "ports" : "addresses"} of ${args[2]}`,
          args[2],
        );
      }
      if (cmd === "add") {
        const max = set.size ?? DEFAULT_MAXELEM;
        let count = members.size;
        for (const e of elems) if (!members.has(e)) count++;
        if (count > max)
          fail(
            "import_invalid_value",
            `ipset add ${name} ${args[2]}: the set would hold ${count} elements, more than its maxelem ${max}: ipset refuses it ("Hash is full, cannot add more elements")`,
            args[2],
          );
        if (count > MAX_SET_ELEMENTS)
          fail(
            "import_invalid_value",
            `ipset add ${name} ${args[2]}: the set would hold ${count} elements; a policy set holds at most ${MAX_SET_ELEMENTS}`,
            args[2],
          );
        draft.ipsetElementsAdded += elems.length;
        for (const e of elems) members.add(e);
        if (tuple) {
          let adds = draft.tupleAdds.get(key);
          if (!adds) draft.tupleAdds.set(key, (adds = []));
          adds.push(tuple.add);
        }
      } else for (const e of elems) members.delete(e);
      const notes = [
        ...(set.interval && !tuple && args[2]!.includes("-")
          ? [
              `the range ${args[2]} is ${elems.length === 1 ? "the prefix" : `the ${elems.length} prefixes`} ${elems.join(", ")}: ipset splits it so`,
            ]
          : tuple && elems.length > 1
            ? [
                `${args[2]} is ${elems.length} ipset entries, one per port: ipset ${cmd === "add" ? "adds" : "deletes"} each`,
              ]
            : elems.length > 1
              ? [
                  `${args[2]} is ${elems.length} addresses (${elems[0]} to ${elems[elems.length - 1]}): ipset ${cmd === "add" ? "adds" : "deletes"} each`,
                ]
              : []),
        ...(masked !== undefined
          ? [`${masked} has host bits set: ipset ${cmd === "add" ? "stores" : "deletes"} the network ${elem}`]
          : []),
        ...(dropped.length
          ? [
              `${dropped.join(", ")} of the element not kept${own !== undefined ? ` (warning: ${ELEMENT_TIMEOUT_DROPPED})` : ""}`,
            ]
          : []),
      ];
      return {
        status: "imported",
        target: { kind: "path", path: `/sets/${key}` },
        ...(notes.length ? { reason: notes.join("; ") } : {}),
      };
    }
    case "flush": {
      if (name === undefined) {
        draft.setMembers.clear();
        draft.tupleAdds.clear();
      } else if (!draft.unsupportedIpsets.has(name)) {
        requireSet(draft, name);
        draft.setMembers.delete(setPolicyName(name));
        draft.tupleAdds.delete(setPolicyName(name));
      }
      return { status: "skipped", reason: "ipset flush: empties the set(s) before the script fills them" };
    }
    case "destroy": {
      // By ipset name: destroying `a_b` leaves `a-b` (the same policy name) alone.
      const keys =
        name === undefined
          ? [...draft.ipsets.keys()]
          : [setPolicyName(name)].filter((k) => (draft.ipsets.get(k)?.ipset ?? name) === name);
      for (const k of keys) {
        delete draft.sets[k];
        draft.ipsets.delete(k);
        draft.setMembers.delete(k);
        draft.tupleAdds.delete(k);
      }
      if (name === undefined) draft.unsupportedIpsets.clear();
      else draft.unsupportedIpsets.delete(name);
      return { status: "skipped", reason: "ipset destroy: removes the set(s) before the script creates them" };
    }
    case "restore":
      fail(
        "import_unsupported",
        `ipset ${args[0]}: the sets it reads are not in the input; ${SUPPLY_HINT} (or run the script with \`palisade import --execute\`)`,
        args[0],
      );
    default:
      fail("import_unsupported", `ipset ${args[0]}: swapping and renaming sets are not imported`, args[0]);
  }
}

/**
 * Options after an element: a timeout is the kernel's to count down, counters and comments
 * are not policy; each is named in the report. Anything else changes what the set matches.
 */
function elementOptions(cmd: string, rest: readonly string[]): string[] {
  const dropped: string[] = [];
  for (let i = 0; i < rest.length; i += 2) {
    const o = rest[i]!;
    if (!["timeout", "packets", "bytes", "comment"].includes(o) || rest[i + 1] === undefined)
      fail("import_unsupported", `ipset ${cmd} option ${o}: only a plain element is imported`, o);
    dropped.push(o);
  }
  return dropped;
}

/**
 * An element's own `timeout N` (ipset save writes the time left) where the policy cannot
 * keep it: policy elements have no timeout of their own and take the set's (`setTimeout` 0:
 * created with `timeout 0`, permanent). Returns N when the element's lifetime changes (a
 * warning), undefined when it does not; refuses what would change its meaning (timeout 0:
 * permanent, in a set whose elements expire).
 */
function elementTimeout(rest: readonly string[], elem: string, setTimeout: number | undefined): number | undefined {
  const i = rest.indexOf("timeout");
  if (i < 0 || i % 2 !== 0) return undefined;
  const v = uint(rest[i + 1]!, "timeout");
  if (setTimeout === undefined)
    fail(
      "import_invalid_value",
      `ipset add ${elem} timeout ${v}: the set was created without timeout, so its elements take none (ipset refuses this)`,
      "timeout",
    );
  if (v === setTimeout) return undefined;
  if (v === 0)
    fail(
      "import_unsupported",
      `ipset add ${elem} timeout 0: the element is permanent in ipset, but in the policy every element of this set expires after its timeout ${setTimeout} s (elements have no timeout of their own); put permanent elements in a set without timeout`,
      "timeout",
    );
  return v;
}

/**
 * The set an `add`/`del`/`flush` names, by its ipset name: `a_b` is not `a-b`, though both
 * would be the policy set a_b (ipset refuses a command on a set that does not exist).
 */
function requireSet(draft: PolicyDraft, name: string | undefined) {
  const key = name === undefined ? undefined : setPolicyName(name);
  const set = key === undefined ? undefined : draft.sets[key];
  const origin = key === undefined ? undefined : draft.ipsets.get(key);
  if (!set || !origin || origin.ipset !== name) {
    const other = origin && origin.ipset !== name ? ` (ipset ${origin.ipset} was, a different set)` : "";
    fail(
      "import_syntax",
      `ipset set ${name ?? "(none)"} was not created earlier in the input${other}`,
      name ?? "ipset",
    );
  }
  return set;
}

function create(args: string[], draft: PolicyDraft, exist: boolean, restore: boolean): LineResult {
  const [name, type, ...opts] = args;
  if (!name || !type) fail("import_missing_argument", "ipset create needs a name and a type", "create");
  if (!isImportedIpsetType(type)) {
    // Not an error yet: an `ipset save` of a host lists sets the imported rules may never use.
    const why = `ipset type ${type} is not imported (only hash:ip and hash:net sets of addresses, and hash:ip,port and hash:net,port)`;
    draft.unsupportedIpsets.set(name, why);
    return { status: "skipped", reason: `${why}: a rule that uses set ${name} is refused` };
  }
  let family: "inet" | "inet6" = "inet";
  let timeout: number | undefined;
  let size: number | undefined;
  const extensions = new Set<string>();
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i]!;
    const v = opts[i + 1];
    if (o === "counters" || o === "comment" || o === "skbinfo") extensions.add(o);
    if (o === "counters" || o === "comment" || o === "skbinfo" || o === "forceadd") continue;
    if (v === undefined) fail("import_missing_argument", `ipset create option ${o} needs a value`, o);
    i++;
    if (o === "family") {
      if (v !== "inet" && v !== "inet6") fail("import_invalid_value", `ipset family ${v}: inet or inet6`, v);
      family = v;
    } else if (o === "timeout") timeout = uint(v, o);
    else if (o === "maxelem") {
      size = uint(v, o);
      if (size > MAX_SET_SIZE)
        fail(
          "import_invalid_value",
          `ipset ${name} maxelem ${size}: a policy set declares at most ${MAX_SET_SIZE} elements (size)`,
          v,
        );
    } else if (o === "hashsize" || o === "netmask" || o === "bucketsize" || o === "initval") {
      if (o === "netmask") fail("import_unsupported", "ipset netmask: sets of masked addresses are not imported", v);
    } else fail("import_unsupported", `ipset create option ${o} is not imported`, o);
  }
  const key = setPolicyName(name);
  const existing = draft.ipsets.get(key);
  if (existing && existing.ipset !== name)
    fail("import_conflict", `ipset ${name} and ipset ${existing.ipset} would both be the policy set ${key}`, name);
  if (existing && !exist && restore)
    fail(
      "import_conflict",
      `ipset ${name} exists already: ipset refuses the create without -exist ("Set cannot be created: set with the same name already exists"), and ipset restore stops at this line`,
      name,
    );
  // The kernel excuses a create -exist only when the set is the same: type, maxelem, timeout and
  // extensions (not the family of a hash:ip or hash:net, nor hashsize: measured, ipset 7.17).
  const created = [
    type,
    `maxelem ${size ?? DEFAULT_MAXELEM}`,
    timeout === undefined ? "no timeout" : `timeout ${timeout}`,
    ...(extensions.size ? [...extensions].sort() : ["no counters, comment or skbinfo"]),
  ].join(", ");
  if (existing && exist && existing.created !== undefined && existing.created !== created) {
    const why = `ipset ${name} exists already (${existing.created}), and this create differs (${created}): -exist excuses only an identical create, ipset refuses it ("Set cannot be created: set with the same name already exists")`;
    if (restore) fail("import_conflict", `${why}, and ipset restore stops at this line`, name);
    return { status: "skipped", reason: `${why}; the set stays as it was` };
  }
  if (existing)
    return {
      status: "skipped",
      reason: exist
        ? `ipset ${name} exists already (-exist)`
        : `ipset ${name} exists already: ipset refuses the create without -exist, and the set stays as it was`,
    };
  draft.unsupportedIpsets.delete(name);
  draft.sets[key] = {
    type: family === "inet" ? "ipv4_addr" : "ipv6_addr",
    elements: [],
    ...(type === "hash:net" ? { interval: true } : {}),
    ...tupleSetOf(type, family),
    ...(timeout ? { timeoutSeconds: timeout } : {}),
    ...(size ? { size } : {}),
  };
  draft.ipsets.set(key, {
    ipset: name,
    type,
    created,
    ...(timeout === 0 ? { permanentByDefault: true as const } : {}),
  });
  const renamed = renamedNote(name, key);
  return {
    status: "imported",
    target: { kind: "path", path: `/sets/${key}` },
    ...(renamed ? { reason: renamed } : {}),
  };
}

function uint(v: string, opt: string): number {
  if (!/^\d{1,9}$/.test(v)) fail("import_invalid_value", `ipset ${opt} must be a whole number, got ${v}`, v);
  return Number(v);
}

/**
 * An element as ipset stores it, so that `del` finds what `add` put: IPv6 in RFC 5952 form
 * (2001:DB8:0::1 is 2001:db8::1), a whole-address prefix as the address (10.0.0.1/32 is
 * 10.0.0.1), and a hash:net prefix as its network (10.0.0.1/24 is 10.0.0.0/24: the kernel
 * clears the host bits; `masked` is then the element as written). An IPv4 prefix or range
 * (`10.0.0.0/30`, `10.0.0.1-10.0.0.4`, either end first) in a hash:ip set is each of its
 * addresses, as ipset adds them (a prefix from its network: 10.0.0.5/30 is .4 to .7), up to
 * MAX_EXPANDED; ipset takes neither in an inet6 hash:ip set ("plain IP address must be
 * supplied"). In a hash:net set an IPv4 range is the fewest prefixes that cover it, as ipset
 * splits it; an IPv6 range ipset refuses.
 */
function elementsOf(
  text: string | undefined,
  interval: boolean,
  type: string,
  room: number,
): { elems: string[]; masked?: string } {
  if (!text) fail("import_missing_argument", "ipset add needs an element", "add");
  const zone = zoneIdProblem(text);
  if (zone) fail("import_invalid_value", `ipset element ${zone}`, text);
  const family = type === "ipv6_addr" ? "ipv6" : "ipv4";
  const range = /^([^-]+)-([^-]+)$/.exec(text);
  if (family === "ipv4" && range && isIPv4(range[1]!) && isIPv4(range[2]!)) {
    const [a, b] = [ipv4ToInt(range[1]!), ipv4ToInt(range[2]!)];
    return {
      elems: interval
        ? cover(text, Math.min(a, b), Math.max(a, b))
        : expand(text, Math.min(a, b), Math.max(a, b), room),
    };
  }
  const p = parsePrefix(text);
  const max = family === "ipv6" ? 128 : 32;
  if (!p || p.family !== family || (!interval && family === "ipv6" && text.includes("/") && p.length !== max))
    fail(
      "import_invalid_value",
      `ipset element ${text} is not an ${family === "ipv6" ? "IPv6" : "IPv4"} address${
        interval
          ? family === "ipv6"
            ? " or prefix (ipset takes no IPv6 range)"
            : ", prefix or range"
          : family === "ipv6"
            ? " (ipset takes plain addresses only in a hash:ip set of family inet6)"
            : ", prefix or range"
      }`,
      text,
    );
  if (p.length === 0)
    fail(
      "import_invalid_value",
      `ipset element ${text}: a prefix is /1 to /${max} (ipset refuses /0: "The value of the CIDR parameter of the IP address is invalid")`,
      text,
    );
  if (p.length === max) return { elems: [family === "ipv6" ? compressIpv6(expandIpv6(p.address)) : ipv4Network(p)] };
  if (!interval) {
    const first = ipv4ToInt(ipv4Network(p));
    return { elems: expand(text, first, first + 2 ** (32 - p.length) - 1, room) };
  }
  const elem = `${prefixNetwork(p)}/${p.length}`;
  return hasHostBits(p) ? { elems: [elem], masked: text } : { elems: [elem] };
}

/**
 * The fewest IPv4 prefixes that cover from..to (numbers), as ipset splits a range in a hash:net
 * set (10.0.0.1-10.0.0.4 is 10.0.0.1, 10.0.0.2/31, 10.0.0.4); it refuses the whole space.
 */
function cover(text: string, from: number, to: number): string[] {
  if (from === 0 && to === 2 ** 32 - 1)
    fail(
      "import_invalid_value",
      `ipset element ${text}: ipset refuses a range that covers the whole address space`,
      text,
    );
  const out: string[] = [];
  for (let at = from; at <= to; ) {
    let len = 32;
    // Widen while the prefix starts at `at` and stays inside the range.
    while (len > 0 && at % 2 ** (33 - len) === 0 && at + 2 ** (33 - len) - 1 <= to) len--;
    out.push(len === 32 ? intToIpv4(at) : `${intToIpv4(at)}/${len}`);
    at += 2 ** (32 - len);
  }
  return out;
}

/** Why an add of `n` elements is refused: the input's adds would pass the limit for all sets together. */
function overBudget(text: string, n: number): string {
  // A bound on the import's work: every add counts, whatever a later destroy, flush or del removes.
  return `ipset element ${text} is ${n} element${n === 1 ? "" : "s"}, more than the import may still add: the import adds at most ${MAX_TOTAL_SET_ELEMENTS} ipset elements in all (counting every add of the input, also those a destroy, flush or del removed)`;
}

/**
 * The IPv4 addresses from..to (numbers), at most MAX_EXPANDED of them and at most `room` (what
 * the input's adds may still put in), checked before any is built.
 */
function expand(text: string, from: number, to: number, room: number): string[] {
  const n = to - from + 1;
  if (n > room && n <= MAX_EXPANDED) fail("import_invalid_value", overBudget(text, n), text);
  if (n > MAX_EXPANDED)
    fail(
      "import_unsupported",
      `ipset element ${text} is ${n} addresses in a hash:ip set; the import expands at most ${MAX_EXPANDED} (a /16, ipset's default maxelem): use a hash:net set for networks`,
      text,
    );
  const out: string[] = [];
  for (let i = from; i <= to; i++) out.push(intToIpv4(i));
  return out;
}

/** A line of `ipset save` output (`create NAME TYPE ...`, `add NAME ELEMENT ...`). */
export function isIpsetSaveLine(text: string): boolean {
  return /^(create|add)\s/.test(text);
}

/**
 * `ipset save` / `ipset restore` text: each line is an ipset command without the program name.
 * `input` marks the report entries when the text is an input of its own (--ipset FILE).
 */
export function importIpsetText(text: string, draft: PolicyDraft, out: Collector, input?: "ipsets"): number {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  let commands = 0;
  const session = ipsetSession();
  lines.forEach((raw, idx) => {
    const l = raw.trim();
    const extra = input ? { input } : {};
    if (l === "") return void out.note(idx + 1, l, "skipped", "blank line", extra);
    if (l.startsWith("#")) return void out.note(idx + 1, l, "skipped", "comment", extra);
    if (l === "COMMIT") {
      session.batch = undefined;
      return void out.note(idx + 1, l, "skipped", "end of an ipset restore batch", extra);
    }
    commands++;
    const e = out.add(idx + 1, l, () => applyIpset(splitSaveWords(l), draft, { restore: true, session }));
    if (input) e.input = input;
  });
  return commands;
}
