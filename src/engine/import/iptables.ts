// One iptables/ip6tables command line (the words after the program name, or an
// iptables-save rule line) applied to the policy draft: -A/-I/-N/-P/-F/-X/-t with matches
// and a target. Throws ImportLineError for anything it cannot represent; the caller reports it.
import type { Rule } from "../policy/index.ts";
import { Cursor, fail } from "./cursor.ts";
import { isTable, type Table } from "./chains.ts";
import type { DraftChain, IptablesContext, LineResult, PolicyDraft, RuleEntry } from "./draft.ts";
import { matchOrderWarning, statefulBeforeLastLimit } from "./match-order.ts";
import { IMPLICIT_MODULE, MODULES, UNSUPPORTED_MODULES, canonicalOption, type ModuleSpec } from "./matches.ts";
import {
  finishRule,
  negate,
  setMatch,
  splitEither,
  type OptionValue,
  type Options,
  type RuleDraft,
} from "./rule-draft.ts";
import { REFUSED_TARGETS, TARGETS, isTargetName, type TargetSpec } from "./targets.ts";
import { parseAddressList, parseInterface } from "./values.ts";
import { CHAIN_NAME_CLASH, PORT_PROTOCOLS, PROTOCOLS } from "./vocab.ts";
import { liftPknock } from "./pknock.ts";

type Op = "A" | "I" | "N" | "P" | "F" | "X" | "Z" | "L" | "D" | "R" | "E";
const COMMANDS: Record<string, Op> = {
  "-A": "A",
  "--append": "A",
  "-I": "I",
  "--insert": "I",
  "-N": "N",
  "--new-chain": "N",
  "--new": "N",
  "-P": "P",
  "--policy": "P",
  "-F": "F",
  "--flush": "F",
  "-X": "X",
  "--delete-chain": "X",
  "-Z": "Z",
  "--zero": "Z",
  "-L": "L",
  "--list": "L",
  "-S": "L",
  "--list-rules": "L",
  "-D": "D",
  "--delete": "D",
  "-R": "R",
  "--replace": "R",
  "-E": "E",
  "--rename-chain": "E",
  "-C": "L",
  "--check": "L",
};

/** The line's -j / -g: NAME, the word that gave it, and what the line's options made of it. */
interface RuleTarget {
  name: string;
  word: string;
  goto: boolean;
  spec?: TargetSpec;
  opts: Options;
  declared?: Declared;
  shadowed?: boolean;
  /** A shadowed NAME that is also a target's (not MYCHAIN): the messages tell the two apart. */
  targetName?: boolean;
}

interface ModuleInstance {
  name: string;
  spec: ModuleSpec;
  opts: Options;
}

export function applyIptables(words: readonly string[], ctx: IptablesContext): LineResult {
  const cur = new Cursor(words);
  let table: Table = ctx.table ?? "filter";
  let op: Op | undefined;
  let opWord = "";
  let chainName: string | undefined;
  let position: number | undefined;
  let policyTarget: string | undefined;
  const d: RuleDraft = { table, chainKey: "", match: {}, notes: [], policy: ctx.draft, line: ctx.line };
  if (ctx.family) d.family = ctx.family;
  if (ctx.ipv4Program) d.ipv4Program = true;
  const modules: ModuleInstance[] = [];
  let target: RuleTarget | undefined;
  let neg = false;

  const takeNeg = (opt: string, allowed: boolean, hasArg = true): boolean => {
    // Old syntax puts the '!' after the option (`-s ! 10.0.0.0/8`); after a flag it belongs to the next option.
    if (hasArg && cur.peek() === "!") {
      cur.next("!");
      if (neg) fail("import_syntax", "'!' given twice", opt);
      neg = true;
    }
    const was = neg;
    neg = false;
    if (was && !allowed) fail("import_syntax", `'!' cannot be used with ${opt}`, opt);
    return was;
  };
  const setCommand = (o: Op, w: string) => {
    if (op) fail("import_syntax", `one command per line: ${opWord} and ${w}`, w);
    op = o;
    opWord = w;
  };

  while (!cur.done) {
    let w = cur.next("option");
    if (w === "!") {
      if (neg) fail("import_syntax", "'!' given twice", w);
      neg = true;
      continue;
    }
    const cmd = COMMANDS[w];
    if (cmd) {
      takeNeg(w, false);
      setCommand(cmd, w);
      if (cmd === "A" || cmd === "I" || cmd === "N" || cmd === "D" || cmd === "R" || cmd === "E")
        chainName = cur.arg("chain name", w);
      else if (cmd !== "P") chainName = cur.optionalArg();
      if (cmd === "P") {
        chainName = cur.arg("chain name", w);
        policyTarget = cur.arg("policy (ACCEPT or DROP)", `${w} ${chainName}`);
      }
      if ((cmd === "I" || cmd === "D" || cmd === "R") && /^\d+$/.test(cur.peek() ?? ""))
        position = Number(cur.next("rule number"));
      continue;
    }
    switch (w) {
      case "-t":
      case "--table": {
        takeNeg(w, false);
        const t = cur.arg("table name", w);
        if (!isTable(t))
          fail("import_unsupported", `table ${t} is not one of filter, nat, mangle, raw, security, rawpost`, t);
        table = t;
        d.table = t;
        continue;
      }
      case "-s":
      case "--source":
      case "--src":
      case "-d":
      case "--destination":
      case "--dst": {
        const n = takeNeg(w, true);
        const text = cur.arg("address", w);
        // iptables and ip6tables read `0/0` as "any address" of their family: no match at all.
        if (text === "0/0" && !n) continue;
        const list = parseAddressList(text, w);
        const key = w === "-s" || w === "--source" || w === "--src" ? "saddr" : "daddr";
        setMatch(d, key, negate(n, list.length === 1 ? list[0]! : list), w);
        continue;
      }
      case "-p":
      case "--protocol": {
        const n = takeNeg(w, true);
        const p = cur.arg("protocol", w).toLowerCase();
        if (p === "all" || p === "0") {
          if (n) fail("import_unsupported", "! -p all matches nothing", w);
          continue;
        }
        const proto = PROTOCOLS[p];
        if (!proto)
          fail(
            "import_unsupported",
            `protocol ${p} is not one of ${[...new Set(Object.values(PROTOCOLS))].join(", ")}`,
            p,
          );
        setMatch(d, "protocol", negate(n, proto), w);
        continue;
      }
      case "-i":
      case "--in-interface":
      case "-o":
      case "--out-interface": {
        const n = takeNeg(w, true);
        const text = cur.arg("interface name", w);
        if (text === "+") {
          // `+` alone matches every interface.
          if (n) fail("import_unsupported", `! ${w} + matches no packet`, w);
          continue;
        }
        setMatch(d, w === "-i" || w === "--in-interface" ? "iif" : "oif", negate(n, parseInterface(text, w)), w);
        continue;
      }
      case "-f":
      case "--fragment": {
        const n = takeNeg(w, true, false);
        if (d.family === "ipv6")
          fail("import_unsupported", "ip6tables has no -f: IPv6 fragments are matched with -m frag", w);
        setMatch(d, "fragment", !n, w);
        continue;
      }
      case "-m":
      case "--match": {
        takeNeg(w, false);
        const name = cur.arg("match module name", w);
        const spec = MODULES[name];
        if (!spec) {
          const why = UNSUPPORTED_MODULES[name];
          if (why) fail("import_unsupported", `-m ${name}: ${why}`, name);
          fail("import_unknown_module", `unknown match module ${name}`, name);
        }
        otherFamilyIcmp(d, name, name);
        modules.push({ name, spec, opts: new Map() });
        continue;
      }
      case "-j":
      case "--jump":
      case "-g":
      case "--goto": {
        takeNeg(w, false);
        if (target)
          fail("import_syntax", `a rule has one target: -${target.goto ? "g" : "j"} ${target.name} and ${w}`, w);
        const name = cur.arg(w.startsWith("-g") || w === "--goto" ? "chain name" : "target name", w);
        const isGoto = w === "-g" || w === "--goto";
        const shadowed = userChainShadows(name, table, ctx);
        const spec = isGoto || shadowed ? undefined : TARGETS[name];
        target = { name, word: w, goto: isGoto, opts: new Map() };
        if (spec) target.spec = spec;
        // The restore text's line that made -j TTL / -j HL a jump, for the error if the table lacks it.
        const at = shadowed && !isGoto ? ctx.declaredChains?.get(name) : undefined;
        if (at) target.declared = at;
        if (shadowed) target.shadowed = true;
        if (shadowed && isTargetName(name, program(ctx))) target.targetName = true;
        continue;
      }
      case "-c":
      case "--set-counters":
        takeNeg(w, false);
        cur.next("packet count", w);
        cur.next("byte count", w);
        d.notes.push("-c (initial counter values) not carried over");
        continue;
      case "-4":
      case "--ipv4":
      case "-6":
      case "--ipv6":
        takeNeg(w, false);
        d.family = w === "-4" || w === "--ipv4" ? "ipv4" : "ipv6";
        continue;
      case "-w":
      case "--wait":
        takeNeg(w, false);
        if (/^\d+$/.test(cur.peek() ?? "")) cur.next("seconds");
        continue;
      case "-v":
      case "--verbose":
      case "-n":
      case "--numeric":
      case "-x":
      case "--exact":
      case "--line-numbers":
        takeNeg(w, false);
        continue;
    }
    if (!w.startsWith("-")) fail("import_syntax", `unexpected word ${w}`, w);
    // A target or module option: the target's options first (they follow -j), then the
    // modules from the most recently loaded, then the module -p loads implicitly.
    // iptables (getopt_long) also takes an unambiguous abbreviation: `DNAT --to 1.2.3.4`.
    const lookup = (opt: string) => {
      if (target?.spec && Object.hasOwn(target.spec.options, opt)) return { targetOpt: true as const };
      for (let k = modules.length - 1; k >= 0; k--) {
        const f = canonicalOption(modules[k]!.spec, opt);
        if (f) return { found: f, inst: modules[k]! };
      }
      const proto = typeof d.match.protocol === "string" ? d.match.protocol : d.match.protocol?.not;
      const implicit = proto ? IMPLICIT_MODULE[proto] : undefined;
      const spec = implicit ? MODULES[implicit] : undefined;
      const f = spec ? canonicalOption(spec, opt) : undefined;
      if (f && implicit && spec)
        return { found: f, inst: { name: implicit, spec, opts: new Map() } as ModuleInstance, implicit: true };
      return undefined;
    };
    let hit = lookup(w);
    if (!hit && w.startsWith("--") && w.length > 2) {
      const proto = typeof d.match.protocol === "string" ? d.match.protocol : d.match.protocol?.not;
      const implicit = proto ? MODULES[IMPLICIT_MODULE[proto] ?? ""] : undefined;
      const known = new Set<string>([
        ...Object.keys(target?.spec?.options ?? {}),
        ...[...modules.map((m) => m.spec), ...(implicit ? [implicit] : [])].flatMap((m) => Object.keys(m.options)),
      ]);
      // Spellings of one option (--dport, --destination-port) are one candidate, as getopt_long counts them.
      const canonical = (k: string) => {
        for (const m of [...modules.map((x) => x.spec), ...(implicit ? [implicit] : [])])
          if (m.options[k]?.alias) return m.options[k]!.alias!;
        return k;
      };
      const candidates = [...new Set([...known].filter((k) => k.startsWith(w)).map(canonical))];
      if (candidates.length === 1) {
        w = candidates[0]!;
        hit = lookup(w);
      } else if (candidates.length > 1) fail("import_unknown_option", `${w} is ambiguous: ${candidates.join(", ")}`, w);
    }
    if (hit && "targetOpt" in hit) {
      takeNeg(w, false);
      const arity = target!.spec!.options[w]!;
      if (target!.opts.has(w)) fail("import_syntax", `${w} given twice`, w);
      const value =
        arity === 0
          ? undefined
          : arity === 1
            ? cur.next("value", w)
            : `${cur.next("value", w)} ${cur.next("second value", w)}`;
      target!.opts.set(w, value === undefined ? { neg: false, opt: w } : { value, neg: false, opt: w });
      continue;
    }
    if (!hit) {
      if (target?.shadowed && !target.goto) {
        const at = target.declared;
        const where = at ? ` line ${at.line} declared (in table ${at.table})` : ` of table ${table}`;
        const why = target.targetName
          ? `not the ${target.name} target, so it takes no options`
          : "and a jump takes no options";
        fail(
          "import_unknown_option",
          `unknown option ${w}, as iptables says: -j ${target.name} is a jump to the user chain ${target.name}${where}, ${why}`,
          w,
        );
      }
      if (target && !target.spec)
        fail("import_unknown_option", `unknown option ${w} (target ${target.name} takes no options here)`, w);
      fail(
        "import_unknown_option",
        `unknown option ${w}${modules.length === 0 && !target ? " (is a -m module or -p protocol missing?)" : ""}`,
        w,
      );
    }
    const { found, inst } = hit;
    if (hit.implicit) {
      otherFamilyIcmp(d, inst.name, w);
      modules.push(inst);
    }
    const n = takeNeg(w, Boolean(found.spec.neg), found.spec.arity > 0);
    if (inst.opts.has(found.name)) fail("import_syntax", `${w} given twice`, w);
    let value: string | undefined;
    if (found.spec.arity >= 1) value = cur.next("value", w);
    if (found.spec.arity === 2) value = `${value} ${cur.next("second value", w)}`;
    inst.opts.set(found.name, value === undefined ? { neg: n, opt: w } : { value, neg: n, opt: w });
  }
  if (neg) fail("import_syntax", "'!' at the end of the line negates nothing", "!");
  if (!op) fail("import_syntax", "no command (-A, -I, -N, -P, ...) on this line", words[0] ?? "");
  const draft = ctx.draft;

  switch (op) {
    case "L":
      return { status: "skipped", reason: `${opWord} only lists or checks rules: no effect on the policy` };
    case "Z":
      return { status: "skipped", reason: "-Z only zeroes counters: no effect on the policy" };
    case "D":
    case "R":
    case "E":
      fail(
        "import_unsupported",
        `${opWord} changes rules added earlier; write the final rules instead (the import builds the policy from -A/-I/-N/-P)`,
        opWord,
      );
    case "F":
      return flush(draft, table, chainName, opWord);
    case "X":
      return deleteChain(draft, table, chainName);
    case "N": {
      // iptables -N DNAT, -N TTL / ip6tables -N HL (1.8.9, both builds): "chain name may not
      // clash with target name". The other family's name is a free chain name (iptables -N HL loads).
      if (chainName !== undefined && refusesChainName(chainName, ctx))
        fail(
          "import_conflict",
          `${ctx.family === "ipv6" ? "ip6tables" : "iptables"} refuses a chain named ${chainName}: chain name may not clash with target name (${chainName} is its target)`,
          chainName,
        );
      const { chain, renamed } = draft.newUserChain(table, chainName!);
      return {
        status: "imported",
        target: { kind: "chain", chain },
        reason: renamed
          ? `chain ${chainName} is named ${renamed} in the policy (names: a letter, then letters, digits, '_')`
          : undefined,
      };
    }
    case "P": {
      const chain = draft.chain(table, chainName!);
      if (!chain.hook) fail("import_syntax", `-P applies to builtin chains only, not ${chainName}`, chainName);
      const pol = policyTarget!.toUpperCase();
      if (pol !== "ACCEPT" && pol !== "DROP")
        fail("import_invalid_value", `a chain policy is ACCEPT or DROP, not ${policyTarget}`, policyTarget);
      const verdict = pol === "ACCEPT" ? "accept" : "drop";
      chain.headerOnly = false;
      if (!ctx.family) draft.noteFamilyNeutral(chain, ctx.line, ctx.bothFamilies);
      if (d.family) {
        // A script with both iptables and ip6tables: each family's default is settled at the end.
        const fam = draft.familyPolicies.get(chain) ?? {};
        fam[d.family] = verdict;
        draft.familyPolicies.set(chain, fam);
      } else {
        chain.policy = verdict;
        if (verdict === "drop") draft.ipv4PolicyDrops.set(chain, { line: d.line, text: `-P ${chainName} DROP` });
      }
      return { status: "imported", target: { kind: "chain", chain } };
    }
  }

  // -A / -I: a rule.
  const chain = draft.find(table, chainName!) ?? draft.chain(table, chainName!);
  chain.headerOnly = false;
  if (!ctx.family) draft.noteFamilyNeutral(chain, ctx.line, ctx.bothFamilies);
  d.chainKey = chain.key;
  checkProtocolModules(d, modules);
  for (const m of modules) m.spec.build(m.opts, d);
  // A stateful match before the last -m limit (recent --rcheck -m limit -j ACCEPT): the policy
  // evaluates the limit first, so every packet reaching the rule would spend a token and change
  // the verdict of later ones. The counting idiom of a hit count (recent --hitcount > 1) is
  // compiled on its own terms (compile/hitcount.ts) and keeps the warning.
  const hitcount = d.match.recent?.hitcount;
  const beforeLimit = hitcount !== undefined && hitcount > 1 ? undefined : statefulBeforeLastLimit(modules);
  const reordered = beforeLimit ? undefined : matchOrderWarning(modules);
  if (reordered) d.notes.push(reordered);
  checkPorts(d);
  if (d.pknock) return liftPknock(d, chain, target?.name, ctx);
  const action = buildAction(d, chain, target);
  // The entries' action becomes the jump to the limit's chain below.
  const limited = beforeLimit ? takeLimit(d, action, beforeLimit, target?.name ?? "") : undefined;
  const accepts = action === "accept" || (typeof action === "object" && action.type === "accept");
  if (d.match.ipsec?.protocol === "esp" && accepts) {
    // nft tests only that an IPsec policy applies, not the SA's protocol (validation warns too).
    d.notes.push(
      "warning: --proto esp cannot be tested on nftables: there this ACCEPT also accepts AH-only IPsec traffic " +
        "(the iptables target keeps --proto esp)",
    );
  }
  const entries = splitEither(d).map((match) => ({
    rule: finishRule({ ...d, match }, structuredClone(action)),
    line: ctx.line,
  }));
  const entry = entries[0]!;
  if (entries.length > 1)
    d.notes.push(
      d.ctEither
        ? `${d.ctEither.opt}: split into a state rule and a ${d.ctEither.nat.join("/")} rule (without those states)`
        : "multiport --ports: split into a source-port and a destination-port rule",
    );
  if (d.rttl) settleRttl(d, d.rttl, chain.rules.slice(0, op === "I" ? (position ?? 1) - 1 : chain.rules.length));
  if (op === "I" && (position ?? 1) - 1 > chain.rules.length)
    fail(
      "import_invalid_value",
      `-I ${chainName} ${position}: the chain has only ${chain.rules.length} rules`,
      String(position),
    );
  // Created last, when the line can no longer fail: a refused line leaves no chain behind.
  if (limited) {
    const helper = d.policy.newGeneratedChain(chain.table, `${chain.key.slice(0, 20)}_limit`);
    helper.rules.push({ rule: limited.rule, line: ctx.line });
    for (const e of entries) e.rule.action = { type: "jump", chain: helper.key };
    d.notes.push(limited.note(helper.key));
  }
  if (op === "I") {
    chain.rules.splice((position ?? 1) - 1, 0, ...entries);
  } else {
    chain.rules.push(...entries);
  }
  if (target?.targetName && target.declared && !target.goto)
    ctx.shadowedJumps?.push({ line: ctx.line, name: target.name, declared: target.declared.line });
  return {
    status: "imported",
    target: { kind: "rule", entry },
    reason: d.notes.length ? d.notes.join("; ") : undefined,
  };
}

/**
 * The rule of the chain that holds a line's last -m limit (statefulBeforeLastLimit): the limit
 * and the line's action (and comment). The line's rule keeps every other match and jumps there,
 * so the limit sees only the packets that passed them, as iptables evaluates the line; a
 * packet over the limit returns from that chain and meets the next rule, as after a rule that
 * did not match. Takes the limit out of the draft's matches.
 * A RETURN or a goto cannot move into another chain: there it would return from (or go on
 * from) that chain, not from the line's, and the packet would meet the line's next rule
 * instead of leaving the chain. Refused: the policy cannot evaluate the limit after the other
 * matches for them, and evaluating it first (as before) changes which packets it lets through.
 */
function takeLimit(
  d: RuleDraft,
  action: Rule["action"],
  before: readonly string[],
  targetName: string,
): { rule: Rule; note: (chain: string) => string } {
  const kind = typeof action === "string" ? action : action.type;
  const mods = before.map((m) => `-m ${m}`).join(", ");
  if (kind === "return" || kind === "goto")
    fail(
      "import_unsupported",
      `${mods} before -m limit with ${kind === "goto" ? `-g ${targetName}` : "-j RETURN"}: the limit must see only the packets that pass ${mods}, which the policy can express only by moving the limit and the action into a chain of their own, where ${kind === "goto" ? "the goto" : "RETURN"} would act for that chain instead of this one (a packet the limit lets through would then meet this chain's next rule); put -m limit first if every packet reaching the rule may spend a token`,
      "limit",
    );
  const rule: Rule = { match: { limit: d.match.limit! }, action: structuredClone(action) };
  if (d.comment !== undefined) rule.comment = d.comment;
  delete d.match.limit;
  return {
    rule,
    note: (chain) =>
      `${mods} before -m limit: the limit and the action are chain ${chain}'s rule, which this rule jumps to, so only packets that pass every other match spend a token, as in iptables (one over the limit returns and meets the next rule)`,
  };
}

/**
 * `recent --update|--rcheck --rttl` also needs the packet's TTL to equal the one the list's
 * entry recorded, which xt_recent stores at every --set and at every --update that matched
 * (the TTL of that packet). The policy's lists hold no TTL, so --rttl imports only where it is
 * always true: an earlier rule of the same chain stamps the list with --set on every packet
 * (a recent match and nothing else), so the entry holds this very packet's TTL when the rule
 * asks; outside the mangle table, where no TTL or HL target can change the packet in between.
 * That is the classic "ICMPFLOOD / SSHBRUTE" chain (--set, then --update --hitcount --rttl).
 */
function settleRttl(d: RuleDraft, rttl: OptionValue, before: readonly RuleEntry[]): void {
  const r = d.match.recent;
  const refuse = (why: string): never =>
    fail("import_unsupported", `recent --rttl has no equivalent in the policy schema: ${why}`, rttl.opt);
  if (!r || (r.mode !== "update" && r.mode !== "rcheck")) return refuse("it only goes with --update or --rcheck");
  if (d.table === "mangle") return refuse("in the mangle table a TTL or HL target may change the TTL in between");
  const stamp = before.find((e) => {
    const m = e.rule.match;
    return (
      m?.recent?.mode === "set" &&
      m.recent.name === r.name &&
      m.recent.side === r.side &&
      Object.keys(m).every((k) => k === "recent" || (k === "family" && m.family === d.family))
    );
  });
  if (!stamp)
    return refuse(
      `the lists hold no TTL; it is imported only after a rule of the same chain that stamps list ${r.name} (--set, no other match) on every packet`,
    );
  d.notes.push(
    `--rttl is always true here: line ${stamp.line} stamps list ${r.name} with every packet's TTL just before`,
  );
}

/**
 * ip6tables has no icmp match and iptables no icmp6 (measured, 1.8.9: "Couldn't load match
 * `icmp'", and "unknown option --icmp-type" for the implicit one), though -p icmp alone loads in
 * ip6tables (next header 1). `token` is the -m name or the option that loaded it implicitly.
 */
function otherFamilyIcmp(d: RuleDraft, module: string, token: string): void {
  if (module === "icmp" && d.family === "ipv6")
    fail(
      "import_invalid_value",
      "ip6tables has no icmp match (ip6tables-restore refuses the rule); ICMPv6 is -p ipv6-icmp -m icmp6 --icmpv6-type",
      token,
    );
  if (module === "icmp6" && (d.family === "ipv4" || d.ipv4Program))
    fail(
      "import_invalid_value",
      "iptables has no icmp6 match (iptables-restore refuses the rule); ICMP is -p icmp -m icmp --icmp-type",
      token,
    );
}

/** Match modules that belong to one protocol, and the -p value each needs. */
const MODULE_PROTOCOL: Record<string, string> = {
  tcp: "tcp",
  udp: "udp",
  icmp: "icmp",
  icmp6: "icmpv6",
  sctp: "sctp",
  dccp: "dccp",
  udplite: "udplite",
  tcpmss: "tcp",
};

/**
 * `-p tcp -m udp --dport 53` loads, but the kernel refuses it ("udp match: only valid for
 * protocol 17"): a protocol's match module needs that protocol, not negated. Importing it
 * would turn a rule that never loaded into one that matches.
 */
function checkProtocolModules(d: RuleDraft, modules: readonly ModuleInstance[]): void {
  for (const m of modules) {
    const want = MODULE_PROTOCOL[m.name];
    if (!want) continue;
    const p = d.match.protocol;
    const flag = want === "icmpv6" ? "ipv6-icmp" : want;
    if (p === want) continue;
    const given = p === undefined ? "no -p" : typeof p === "string" ? `-p ${p}` : `! -p ${p.not}`;
    fail(
      "import_invalid_value",
      `-m ${m.name} only works with -p ${flag}, but this rule has ${given} (the kernel refuses to load such a rule); write -p ${flag} -m ${m.name}, or use the module of the rule's protocol`,
      m.name,
    );
  }
}

function checkPorts(d: RuleDraft): void {
  if (d.match.sport === undefined && d.match.dport === undefined) return;
  const p = d.match.protocol;
  if (typeof p !== "string" || !PORT_PROTOCOLS.has(p)) {
    fail(
      "import_syntax",
      "port matches need -p tcp, udp, sctp, dccp or udplite",
      d.match.dport !== undefined ? "--dport" : "--sport",
    );
  }
}

/** The program that reads the line: ip6tables, iptables, or either (a headerless restore text). */
function program(ctx: IptablesContext): "ipv4" | "ipv6" | undefined {
  if (ctx.family === "ipv6") return "ipv6";
  if (ctx.family === "ipv4" || ctx.ipv4Program) return "ipv4";
  return undefined;
}

/** `-N NAME` that the line's program refuses: NAME is one of its targets (vocab.ts). */
function refusesChainName(name: string, ctx: IptablesContext): boolean {
  const p = program(ctx);
  if (p) return CHAIN_NAME_CLASH[p].has(name);
  return CHAIN_NAME_CLASH.ipv4.has(name) && CHAIN_NAME_CLASH.ipv6.has(name);
}

/**
 * `-j NAME` where a user chain NAME exists is a jump to the chain, not the target NAME, as
 * iptables reads it (measured, 1.8.9, nft and legacy, every target extension it ships: DNAT,
 * SNAT, MASQUERADE, REDIRECT, LOG, MARK, REJECT, CONNMARK, NFLOG, TTL, HL, ...): in restore text,
 * once the text declared the chain with `:NAME -` or `-N NAME` (in any table; a later table
 * without the chain refuses the jump); in a script, where the table has the chain (iptables
 * cannot create a chain named like its own targets, so there it is the other family's TTL / HL
 * or a target this iptables lacks).
 */
function userChainShadows(name: string, table: Table, ctx: IptablesContext): boolean {
  if (ctx.declaredChains) return ctx.declaredChains.has(name);
  const chain = ctx.draft.find(table, name);
  return chain !== undefined && !chain.hook && !refusesChainName(name, ctx);
}

type Declared = { line: number; table: Table };

function buildAction(d: RuleDraft, chain: DraftChain, target: RuleTarget | undefined): Rule["action"] {
  if (d.counterTag !== undefined) {
    if (target)
      fail(
        "import_unsupported",
        `a rule tagged palisade-counter:${d.counterTag} has no target in Palisade's rendering`,
        target.name,
      );
    d.policy.counters[d.counterTag] = {};
    return { type: "counter", name: d.counterTag };
  }
  if (!target) {
    // No target: iptables only counts the packet (and runs the matches' side effects, e.g. recent --set).
    const counters = d.policy.counters;
    const name = d.policy.freshName(`${chain.key}_count`.slice(0, 24), (n) => n in counters);
    counters[name] = {};
    d.notes.push(`a rule without a target only counts packets: imported with counter ${name}`);
    return { type: "counter", name };
  }
  if (target.spec) return target.spec.build(target.opts, d);
  const refused = REFUSED_TARGETS[target.name];
  if (refused && !target.goto && !target.shadowed) fail(refused.code, refused.reason, target.name);
  const dest = d.policy.find(chain.table, target.name);
  if (!dest || dest.hook) {
    if (dest?.hook) fail("import_syntax", `cannot jump to builtin chain ${target.name}`, target.name);
    const at = target.declared;
    if (at && !target.targetName)
      fail(
        "import_unknown_target",
        `-j ${target.name} is a jump to a chain ${target.name}, which table ${chain.table} lacks: line ${at.line} declared it in table ${at.table}, and a chain belongs to its table`,
        target.name,
      );
    if (at)
      fail(
        "import_unknown_target",
        `-j ${target.name} is a jump to a chain ${target.name} here, not the ${target.name} target: line ${at.line} declared a chain ${target.name} (in table ${at.table}), and from then on iptables-restore reads -j ${target.name} as a jump in every table; table ${chain.table} has no chain ${target.name}`,
        target.name,
      );
    fail(
      "import_unknown_target",
      `unknown target ${target.name} (not a supported target, and no chain of that name was created with -N in table ${chain.table})`,
      target.name,
    );
  }
  return { type: target.goto ? "goto" : "jump", chain: dest.key };
}

function flush(draft: PolicyDraft, table: Table, chainName: string | undefined, word: string): LineResult {
  const chains = chainName
    ? [draft.find(table, chainName)].filter((c): c is DraftChain => c !== undefined)
    : [...draft.chains.values()].filter((c) => c.table === table);
  if (chains.some((c) => c.rules.length > 0)) {
    fail(
      "import_unsupported",
      `${word} would remove rules added earlier in this script; the import keeps every rule, so remove them from the script instead`,
      word,
    );
  }
  return { status: "skipped", reason: `${word}: the imported policy starts empty, so flushing has no effect` };
}

function deleteChain(draft: PolicyDraft, table: Table, chainName: string | undefined): LineResult {
  if (!chainName) {
    const users = [...draft.chains.values()].filter((c) => c.table === table && !c.hook);
    if (users.length === 0)
      return { status: "skipped", reason: "-X: no user chains exist yet, so deleting them has no effect" };
    fail(
      "import_unsupported",
      "-X would delete chains created earlier in this script; remove them from the script instead",
      "-X",
    );
  }
  const chain = draft.find(table, chainName);
  if (!chain)
    return { status: "skipped", reason: `-X ${chainName}: the chain does not exist yet, so deleting it has no effect` };
  if (chain.hook) fail("import_syntax", `cannot delete builtin chain ${chainName}`, chainName);
  if (chain.rules.length > 0 || draft.isReferenced(chain.key))
    fail("import_unsupported", `-X ${chainName}: the chain still has rules or is jumped to`, chainName);
  draft.deleteChain(chain);
  return { status: "imported", reason: `chain ${chainName} deleted again` };
}
