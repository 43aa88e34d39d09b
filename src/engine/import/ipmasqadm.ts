// Linux 2.2 kernel port forwarding (seed: kernel-port-forwarding): `ipmasqadm portfw`,
// `autofw -h`, `mfw`, and the ipchains lines that go with them -- `ipchains -I input ... -m N`
// (mark packets for an mfw forward) and `ipchains ... -j MASQ` (masquerade a forward's replies).
// mfw forwards and MASQ lines refer to other lines, so they are resolved after the whole script.
import type { Match } from "../policy/index.ts";
import { Address } from "../policy/index.ts";
import { Cursor, fail } from "./cursor.ts";
import type { PolicyDraft, ReportTarget } from "./draft.ts";
import type { LineResult } from "./draft.ts";
import { negate } from "./rule-draft.ts";
import { parseAddress, parseInterface, parsePort, parsePortItem, parseUint } from "./values.ts";
import { PROTOCOLS } from "./vocab.ts";

/** ipmasqadm's documented default preference (PORTFW usage: "default=10"). */
const DEFAULT_PREF = 10;

export type Deferred = { phase: 1 | 2; resolve: () => LineResult };
export type Outcome = LineResult | { deferred: Deferred };

/** State shared by the ipmasqadm/ipchains lines of one script. */
export class ForwardingState {
  /** Mark -> the ipchains rule that gives packets that mark. */
  readonly marks = new Map<number, { match: Match; line: number; used: boolean }>();
  /** Mark -> index in forwarding.markForwards. */
  readonly markForwardIndex = new Map<number, number>();
  constructor(readonly draft: PolicyDraft) {}
}

function hostAddress(text: string, what: string): string {
  const a = parseAddress(text, what);
  // ipmasqadm scripts write backends as x.y.z.w/32; a forward goes to one host.
  const host = a.endsWith("/32") ? a.slice(0, -3) : a.endsWith("/128") ? a.slice(0, -4) : a;
  if (!Address.safeParse(host).success)
    fail("import_invalid_value", `${text} is a network, not one host address`, text);
  return host;
}

function forwardProtocol(text: string): "tcp" | "udp" {
  if (text !== "tcp" && text !== "udp")
    fail("import_invalid_value", `protocol ${text}: port forwarding takes tcp or udp`, text);
  return text;
}

export function applyIpmasqadm(words: readonly string[], st: ForwardingState): Outcome {
  const cur = new Cursor(words);
  const module = cur.next("module (portfw, autofw or mfw)");
  switch (module) {
    case "portfw":
      return portfw(cur, st);
    case "autofw":
      return autofw(cur, st);
    case "mfw":
      return mfw(cur, st);
    default:
      fail("import_unsupported", `ipmasqadm module ${module} is not one of portfw, autofw, mfw`, module);
  }
}

/** The command option of a line (-a, -A, -F, ...): one per line, as ipmasqadm parses it. */
function command(op: string | undefined, w: string): string {
  if (op) fail("import_syntax", `one command per line: -${op} and ${w}`, w);
  return w.slice(1);
}

/** A clear (-f, -F): the imported policy starts empty, so it does nothing unless this script added forwards before it. */
function clearForwards(module: string, op: string, added: readonly unknown[]): Outcome {
  if (added.length > 0)
    fail("import_unsupported", `${module} -${op} would clear forwards added earlier in this script`, `-${op}`);
  return { status: "skipped", reason: `${module} -${op}: the imported policy starts empty, so clearing has no effect` };
}

/** Deleting or changing a forward an earlier line added: the import writes the final forwards only. */
function refuseEdit(module: string, op: string, verb: "deletes" | "changes"): never {
  fail(
    "import_unsupported",
    `${module} -${op} ${verb} a forward added earlier; write the final forwards instead`,
    `-${op}`,
  );
}

function portfw(cur: Cursor, st: ForwardingState): Outcome {
  let op: string | undefined;
  let proto: string | undefined;
  let laddr: string | undefined;
  let lport: number | undefined;
  let raddr: string | undefined;
  let rport: number | undefined;
  let pref = DEFAULT_PREF;
  while (!cur.done) {
    const w = cur.next("option");
    switch (w) {
      case "-a":
      case "-d":
      case "-f":
      case "-l":
      case "-h":
        op = command(op, w);
        break;
      case "-n":
        break;
      case "-P":
        proto = cur.arg("protocol", w);
        break;
      case "-L":
        laddr = cur.arg("local address", w);
        lport = parsePort(cur.arg("local port", `-L ${laddr}`), "-L");
        break;
      case "-R":
        raddr = cur.arg("remote address", w);
        rport = parsePort(cur.arg("remote port", `-R ${raddr}`), "-R");
        break;
      case "-p":
        pref = parseUint(cur.arg("preference", w), "preference", 1000);
        break;
      default:
        fail("import_unknown_option", `unknown portfw option ${w}`, w);
    }
  }
  if (op === "l" || op === "h")
    return { status: "skipped", reason: `portfw -${op} only prints; no effect on the policy` };
  if (op === "f") return clearForwards("portfw", op, st.draft.forwarding.portForwards);
  if (op === "d") refuseEdit("portfw", op, "deletes");
  if (op !== "a") fail("import_syntax", "portfw needs -a (add), -d, -f or -l", "portfw");
  if (!proto) fail("import_missing_argument", "portfw -a needs -P tcp|udp", "-a");
  if (laddr === undefined || lport === undefined)
    fail("import_missing_argument", "portfw -a needs -L LADDR LPORT", "-a");
  if (raddr === undefined || rport === undefined)
    fail("import_missing_argument", "portfw -a needs -R RADDR RPORT", "-a");
  if (pref === 0) fail("import_invalid_value", "portfw -p 0: a preference (load-balancing weight) is at least 1", "0");
  const protocol = forwardProtocol(proto);
  const address = hostAddress(laddr, "-L");
  const backend = { address: hostAddress(raddr, "-R"), port: rport, weight: pref };
  const list = st.draft.forwarding.portForwards;
  // Entries for the same LADDR:LPORT share the connections by preference: one forward, several backends.
  let index = list.findIndex((f) => f.protocol === protocol && f.address === address && f.port === lport);
  if (index < 0) {
    list.push({ protocol, address, port: lport, backends: [], masquerade: false });
    index = list.length - 1;
  }
  const fw = list[index]!;
  if (fw.backends.some((b) => b.address === backend.address && b.port === backend.port)) {
    fail("import_conflict", `portfw ${laddr}:${lport} already forwards to ${raddr}:${rport}`, raddr);
  }
  fw.backends.push(backend);
  return {
    status: "imported",
    target: { kind: "path", path: `/forwarding/portForwards/${index}/backends/${fw.backends.length - 1}` },
  };
}

function autofw(cur: Cursor, st: ForwardingState): Outcome {
  let op: string | undefined;
  let range: { protocol: "tcp" | "udp"; lo: number; hi: number } | undefined;
  let host: string | undefined;
  const notes: string[] = [];
  while (!cur.done) {
    const w = cur.next("option");
    switch (w) {
      case "-A":
      case "-D":
      case "-F":
        op = command(op, w);
        break;
      case "-r": {
        const protocol = forwardProtocol(cur.arg("protocol", w));
        const lo = parsePort(cur.arg("low port", `-r ${protocol}`), "-r");
        const hi = parsePort(cur.arg("high port", `-r ${protocol} ${lo}`), "-r");
        if (lo > hi) fail("import_invalid_value", `port range ${lo}-${hi} is reversed`, String(hi));
        range = { protocol, lo, hi };
        break;
      }
      case "-h":
        host = hostAddress(cur.arg("hidden host address", w), w);
        break;
      case "-c":
        fail(
          "import_unsupported",
          "autofw -c (the hidden host is whoever last used a control port) has no equivalent: a forward needs a fixed host; use -h HOST",
          w,
        );
      case "-u":
        notes.push("-u (timeouts longer than 15 s) is the default for connection tracking; nothing to carry over");
        break;
      default:
        fail("import_unknown_option", `unknown autofw option ${w}`, w);
    }
  }
  if (op === "F") return clearForwards("autofw", op, st.draft.forwarding.rangeForwards);
  if (op === "D") refuseEdit("autofw", op, "deletes");
  if (op !== "A") fail("import_syntax", "autofw needs -A (add), -D or -F", "autofw");
  if (!range) fail("import_missing_argument", "autofw -A needs -r PROTO LPORT HPORT", "-A");
  if (!host) fail("import_missing_argument", "autofw -A needs -h HOST (or the unsupported -c control-port mode)", "-A");
  const list = st.draft.forwarding.rangeForwards;
  list.push({ protocol: range.protocol, ports: `${range.lo}-${range.hi}`, to: host, masquerade: false });
  return {
    status: "imported",
    target: { kind: "path", path: `/forwarding/rangeForwards/${list.length - 1}` },
    reason: notes.join("; ") || undefined,
  };
}

function mfw(cur: Cursor, st: ForwardingState): Outcome {
  let op: string | undefined;
  let mark: number | undefined;
  let raddr: string | undefined;
  let rport: number | undefined;
  let pref = DEFAULT_PREF;
  while (!cur.done) {
    const w = cur.next("option");
    switch (w) {
      case "-A":
      case "-I":
      case "-D":
      case "-E":
      case "-S":
      case "-F":
      case "-L":
        op = command(op, w);
        break;
      case "-n":
        break;
      case "-m":
        mark = parseUint(cur.arg("mark", w), "mark", 0xffffffff);
        break;
      case "-r": {
        raddr = cur.arg("remote address", w);
        const p = cur.optionalArg();
        if (p !== undefined) rport = parsePort(p, "-r");
        break;
      }
      case "-p":
        pref = parseUint(cur.arg("preference", w), "preference", 1000);
        break;
      default:
        fail("import_unknown_option", `unknown mfw option ${w}`, w);
    }
  }
  if (op === "L") return { status: "skipped", reason: "mfw -L only prints; no effect on the policy" };
  if (op === "S")
    return {
      status: "skipped",
      reason:
        "mfw -S forces a failover now (a runtime action); the policy expresses failover with markForwards[].active and healthCheck",
    };
  if (op === "F") return clearForwards("mfw", op, st.draft.forwarding.markForwards);
  if (op === "D" || op === "E") refuseEdit("mfw", op, "changes");
  if (op !== "A" && op !== "I") fail("import_syntax", "mfw needs -A or -I (add), -D, -E, -S, -F or -L", "mfw");
  if (mark === undefined) fail("import_missing_argument", `mfw -${op} needs -m FWMARK`, `-${op}`);
  if (mark === 0) fail("import_invalid_value", "mark 0 means unmarked; an mfw forward needs a mark of 1 or more", "0");
  if (raddr === undefined) fail("import_missing_argument", `mfw -${op} needs -r RADDR [RPORT]`, `-${op}`);
  const backend: { address: string; port?: number; preference: number } = {
    address: hostAddress(raddr, "-r"),
    preference: pref,
  };
  if (rport !== undefined) backend.port = rport;
  const m = mark;
  const insert = op === "I";
  // The marking criteria come from ipchains lines that may follow: resolve after the script.
  return {
    deferred: {
      phase: 1,
      resolve: () => {
        const criteria = st.marks.get(m);
        if (!criteria)
          fail(
            "import_unsupported",
            `no ipchains '-m ${m}' line marks packets for mfw mark ${m}; a mark forward needs its marking criteria`,
            String(m),
          );
        criteria.used = true;
        const list = st.draft.forwarding.markForwards;
        let index = st.markForwardIndex.get(m);
        if (index === undefined) {
          list.push({ mark: m, match: criteria.match, backends: [], active: 0, masquerade: false });
          index = list.length - 1;
          st.markForwardIndex.set(m, index);
        }
        const fw = list[index]!;
        // -I puts the entry at the head of the mark's list: with preference 0 it becomes the primary.
        if (insert) fw.backends.unshift(backend);
        else fw.backends.push(backend);
        const at = index;
        return {
          status: "imported",
          target: {
            kind: "lazy",
            path: () => `/forwarding/markForwards/${at}/backends/${fw.backends.indexOf(backend)}`,
          },
        };
      },
    },
  };
}

/** `ipchains -I input -s X -m N` (mark) and `ipchains -A forward ... -j MASQ` (reply masquerading). */
export function applyIpchains(words: readonly string[], st: ForwardingState): Outcome {
  const cur = new Cursor(words);
  let op: string | undefined;
  let chain: string | undefined;
  const match: Match = {};
  let mark: number | undefined;
  let target: string | undefined;
  let neg = false;
  const takeNeg = () => {
    if (cur.peek() === "!") {
      cur.next("!");
      neg = true;
    }
    const was = neg;
    neg = false;
    return was;
  };
  while (!cur.done) {
    const w = cur.next("option");
    switch (w) {
      case "!":
        neg = true;
        break;
      case "-A":
      case "-I":
      case "-D":
      case "-R":
      case "-F":
      case "-P":
      case "-N":
      case "-X":
      case "-L":
        if (op) fail("import_syntax", `one command per line: ${op} and ${w}`, w);
        op = w;
        chain = cur.optionalArg();
        if (w === "-I" && /^\d+$/.test(cur.peek() ?? "")) cur.next("rule number");
        break;
      case "-s":
      case "-d": {
        const n = takeNeg();
        const addr = parseAddress(cur.arg("address", w), w);
        const key = w === "-s" ? "saddr" : "daddr";
        if (match[key] !== undefined) fail("import_conflict", `${w} given twice`, w);
        match[key] = negate(n, addr);
        // ipchains writes the port right after the address: `-s 192.168.16.27/32 80`.
        const port = cur.optionalArg();
        if (port !== undefined) match[w === "-s" ? "sport" : "dport"] = parsePortItem(port, w);
        break;
      }
      case "-p": {
        const n = takeNeg();
        const p = cur.arg("protocol", w).toLowerCase();
        const proto = PROTOCOLS[p];
        if (!proto) fail("import_unsupported", `protocol ${p} is not supported`, p);
        match.protocol = negate(n, proto);
        break;
      }
      case "-i": {
        const n = takeNeg();
        match.iif = negate(n, parseInterface(cur.arg("interface", w), w));
        break;
      }
      case "-m":
        mark = parseUint(cur.arg("mark", w), "mark", 0xffffffff);
        break;
      case "-j":
        target = cur.arg("target", w);
        break;
      default:
        fail(
          "import_unsupported",
          `ipchains option ${w}: ipchains lines are imported only as FWMARK marks (-m N) and MASQ for forwards; write other rules as iptables`,
          w,
        );
    }
  }
  if (neg) fail("import_syntax", "'!' negates nothing", "!");
  if (op !== "-A" && op !== "-I")
    fail(
      "import_unsupported",
      "ipchains lines are imported only as FWMARK marks (-I input ... -m N) and MASQ for forwards",
      op ?? "ipchains",
    );
  if (!chain) fail("import_missing_argument", `missing chain name after ${op}`, op);
  if ((match.sport !== undefined || match.dport !== undefined) && match.protocol === undefined) {
    fail("import_syntax", "ipchains ports need -p tcp or -p udp", "-p");
  }
  if (mark !== undefined && target === undefined) {
    if (chain !== "input")
      fail(
        "import_unsupported",
        "ipchains marks are imported from the input chain only (where FWMARK reads them)",
        chain,
      );
    if (mark === 0) fail("import_invalid_value", "mark 0 means unmarked", "0");
    if (st.marks.has(mark))
      fail(
        "import_conflict",
        `mark ${mark} is already given by line ${st.marks.get(mark)!.line}; a mark forward has one set of criteria`,
        String(mark),
      );
    const entry = { match, line: 0, used: false };
    st.marks.set(mark, entry);
    const m = mark;
    return {
      deferred: {
        phase: 2,
        resolve: () => markLine(st, m, entry.match),
      },
    };
  }
  if (target === "MASQ" && mark === undefined) {
    if (chain !== "forward") fail("import_unsupported", "ipchains MASQ is imported from the forward chain only", chain);
    return { deferred: { phase: 2, resolve: () => masqLine(st, match) } };
  }
  fail(
    "import_unsupported",
    "ipchains lines are imported only as FWMARK marks (-I input ... -m N) and MASQ for forwards; write other rules as iptables",
    target ?? "ipchains",
  );
}

/** A mark line used by an mfw forward became that forward's criteria; otherwise it is a plain mark rule. */
function markLine(st: ForwardingState, mark: number, match: Match): LineResult {
  const index = st.markForwardIndex.get(mark);
  if (index !== undefined) {
    return {
      status: "lifted",
      target: { kind: "path", path: `/forwarding/markForwards/${index}/match` },
      reason: `marking criteria of the mfw forward for mark ${mark}`,
    };
  }
  const chain = st.draft.chain("mangle", "PREROUTING");
  const entry = { rule: { match, action: { type: "mark" as const, value: mark } }, line: 0 };
  chain.rules.push(entry);
  return {
    status: "imported",
    target: { kind: "rule", entry },
    reason: "ipchains input mark becomes a mark rule in mangle prerouting",
  };
}

function addrOf(v: Match["saddr"]): string | undefined {
  return typeof v === "string" ? v.replace(/\/(32|128)$/, "") : undefined;
}

/** `-j MASQ` on a forward's replies (source = a backend) becomes that forward's `masquerade`. */
function masqLine(st: ForwardingState, match: Match): LineResult {
  const src = addrOf(match.saddr);
  if (!src)
    fail("import_unsupported", "ipchains MASQ is imported only for the replies of a forward: -s BACKEND", "-j MASQ");
  const { saddr: _s, daddr, protocol, sport, ...rest } = match;
  if (Object.keys(rest).length > 0)
    fail(
      "import_unsupported",
      `ipchains MASQ with ${Object.keys(rest).join(", ")} has no forward equivalent`,
      "-j MASQ",
    );
  const f = st.draft.forwarding;
  const hits: ReportTarget[] = [];
  f.portForwards.forEach((fw, i) => {
    if (daddr !== undefined) return;
    if (protocol !== undefined && protocol !== fw.protocol) return;
    if (fw.backends.some((b) => b.address === src && (sport === undefined || sport === (b.port ?? fw.port)))) {
      fw.masquerade = true;
      hits.push({ kind: "path", path: `/forwarding/portForwards/${i}/masquerade` });
    }
  });
  f.rangeForwards.forEach((fw, i) => {
    if (daddr !== undefined || sport !== undefined) return;
    if (protocol !== undefined && protocol !== fw.protocol) return;
    if (fw.to === src) {
      fw.masquerade = true;
      hits.push({ kind: "path", path: `/forwarding/rangeForwards/${i}/masquerade` });
    }
  });
  f.markForwards.forEach((fw, i) => {
    if (protocol !== undefined || sport !== undefined) return;
    // `-d FRIEND` restricts masquerading to the clients the mark selects: the forward only serves those anyway.
    if (daddr !== undefined && JSON.stringify(daddr) !== JSON.stringify(fw.match.saddr)) return;
    if (fw.backends.some((b) => b.address === src)) {
      fw.masquerade = true;
      hits.push({ kind: "path", path: `/forwarding/markForwards/${i}/masquerade` });
    }
  });
  const first = hits[0];
  if (!first)
    fail(
      "import_unsupported",
      `ipchains MASQ for ${src} does not match the backend of any forward in this script`,
      src,
    );
  return {
    status: "lifted",
    target: first,
    reason: `masquerades the replies of ${hits.length === 1 ? "that forward" : `${hits.length} forwards`}: forwards[].masquerade`,
  };
}
