// ipfw (FreeBSD) `add` rules that drop, as the hardening seed writes them, imported by
// rewriting each into the iptables rules with the same meaning and handing those to the
// iptables importer. ipfw checks every packet once on the way in (`in`) and once on the way
// out (`out`), forwarded ones both times, in one list; netfilter's mangle PREROUTING and
// POSTROUTING see the same packets at the same points (before routing, after it), and a
// drop there is final, as in ipfw. Only dropping rules are taken: an ipfw `allow` ends the
// whole list for the packet, which no single netfilter chain can do.
import { fail } from "./cursor.ts";
import type { IptablesContext, LineResult } from "./draft.ts";
import { applyIptables } from "./iptables.ts";

const PROTOS = new Set(["all", "ip", "tcp", "udp", "icmp"]);
const REFUSED_ACTIONS: Record<string, string> = {
  allow:
    "an ipfw allow ends the whole rule list for the packet, which no single netfilter chain can express; write the accept rules in iptables form",
  accept:
    "an ipfw accept ends the whole rule list for the packet, which no single netfilter chain can express; write the accept rules in iptables form",
  pass: "an ipfw pass ends the whole rule list for the packet, which no single netfilter chain can express; write the accept rules in iptables form",
  permit:
    "an ipfw permit ends the whole rule list for the packet, which no single netfilter chain can express; write the accept rules in iptables form",
  pipe: "dummynet pipes (bandwidth, queue and delay shaping) have no equivalent in the policy schema: nftables can drop above a rate but never delay or queue a packet",
  queue:
    "dummynet queues have no equivalent in the policy schema: nftables can drop above a rate but never queue a packet",
  count: "ipfw count rules only count; not imported",
  skipto: "ipfw skipto jumps by rule number, which the policy's chains do not have",
  divert: "divert sockets have no equivalent in the policy schema",
  fwd: "ipfw fwd (policy routing) has no equivalent in the policy schema",
  forward: "ipfw fwd (policy routing) has no equivalent in the policy schema",
  nat: "ipfw nat instances are not imported; write the NAT in iptables form",
  "check-state": "ipfw dynamic rules (check-state / keep-state) are not imported; use ctState in iptables form",
};
const TCP_FLAGS: Record<string, string> = { syn: "SYN", ack: "ACK", fin: "FIN", rst: "RST", psh: "PSH", urg: "URG" };

/** Last rule number per policy draft: ipfw orders by number, the import by line. */
const lastNumber = new WeakMap<object, number>();

function address(words: string[], i: number, side: "-s" | "-d"): { args: string[]; next: number } {
  let not = false;
  if (words[i] === "not") {
    not = true;
    i++;
  }
  const w = words[i];
  if (w === undefined)
    fail("import_syntax", `ipfw: an address is missing after ${side === "-s" ? "from" : "to"}`, "ipfw");
  if (w === "any") {
    if (not) fail("import_invalid_value", "ipfw: not any never matches", w);
    return { args: [], next: i + 1 };
  }
  if (w === "me")
    return {
      args: ["-m", "addrtype", ...(not ? ["!"] : []), side === "-s" ? "--src-type" : "--dst-type", "LOCAL"],
      next: i + 1,
    };
  if (!/^[0-9.]+(\/\d{1,2})?$/.test(w))
    fail("import_unsupported", `ipfw address ${w}: an IPv4 address or prefix, any, or me`, w);
  return { args: [...(not ? ["!"] : []), side, w], next: i + 1 };
}

/** `ipfw [-q] add [N] deny|drop [log] PROTO from A [P] to B [P] [in|out] [via|recv|xmit IF] [[not] verrevpath] [tcpflags F] [setup]`. */
export function applyIpfw(words: readonly string[], ctx: IptablesContext): LineResult {
  const w = [...words];
  let i = 0;
  while (w[i]?.startsWith("-")) {
    if (w[i] !== "-q" && w[i] !== "-f") fail("import_unknown_option", `ipfw option ${w[i]}`, w[i]!);
    i++;
  }
  if (w[i] === "pipe" || w[i] === "queue") fail("import_unsupported", REFUSED_ACTIONS.pipe!, w[i]!);
  if (w[i] !== "add")
    fail("import_unsupported", `ipfw ${w[i] ?? ""}: only ipfw add rules are imported`, w[i] ?? "ipfw");
  i++;
  if (/^\d+$/.test(w[i] ?? "")) {
    const n = Number(w[i]);
    if (n < (lastNumber.get(ctx.draft) ?? 0))
      fail(
        "import_unsupported",
        `ipfw rule ${n} comes after rule ${lastNumber.get(ctx.draft)}: ipfw orders rules by number, the import by line`,
        w[i]!,
      );
    lastNumber.set(ctx.draft, n);
    i++;
  }
  const action = w[i] ?? "";
  if (REFUSED_ACTIONS[action]) fail("import_unsupported", `ipfw ${action}: ${REFUSED_ACTIONS[action]}`, action);
  if (action !== "deny" && action !== "drop")
    fail("import_unsupported", `ipfw action ${action}: only deny/drop rules are imported`, action || "ipfw");
  i++;
  let log = false;
  if (w[i] === "log") {
    log = true;
    i++;
  }
  const proto = w[i] ?? "";
  if (!PROTOS.has(proto))
    fail("import_unsupported", `ipfw protocol ${proto}: all, ip, tcp, udp or icmp`, proto || "ipfw");
  i++;
  const common: string[] = proto === "all" || proto === "ip" ? [] : ["-p", proto];
  const ports = (side: "--sport" | "--dport") => {
    if (/^\d+(-\d+)?$/.test(w[i] ?? "")) {
      if (proto !== "tcp" && proto !== "udp") fail("import_syntax", "ipfw: ports need tcp or udp", w[i]!);
      common.push(side, w[i]!.replace("-", ":"));
      i++;
    }
  };
  if (w[i] !== "from") fail("import_syntax", "ipfw: from ADDRESS expected", w[i] ?? "ipfw");
  let a = address(w, i + 1, "-s");
  common.push(...a.args);
  i = a.next;
  ports("--sport");
  if (w[i] !== "to") fail("import_syntax", "ipfw: to ADDRESS expected", w[i] ?? "ipfw");
  a = address(w, i + 1, "-d");
  common.push(...a.args);
  i = a.next;
  ports("--dport");
  let dir: "in" | "out" | undefined;
  let iface: { how: "via" | "recv" | "xmit"; name: string } | undefined;
  let revpath: "ok" | "bad" | undefined;
  while (i < w.length) {
    const o = w[i]!;
    if (o === "in" || o === "out") {
      dir = o;
      i++;
    } else if (o === "via" || o === "recv" || o === "xmit") {
      if (!w[i + 1]) fail("import_syntax", `ipfw ${o} needs an interface`, o);
      iface = { how: o, name: w[i + 1]! };
      i += 2;
    } else if (o === "verrevpath" || (o === "not" && w[i + 1] === "verrevpath")) {
      revpath = o === "not" ? "bad" : "ok";
      i += o === "not" ? 2 : 1;
    } else if (o === "tcpflags" || o === "setup") {
      if (proto !== "tcp") fail("import_syntax", `ipfw ${o} needs tcp`, o);
      if (o === "setup") {
        common.push("--tcp-flags", "SYN,ACK", "SYN");
        i++;
        continue;
      }
      const set: string[] = [];
      const mask: string[] = [];
      for (const f of (w[i + 1] ?? "").split(",")) {
        const flag = TCP_FLAGS[f.replace(/^!/, "")];
        if (!flag) fail("import_invalid_value", `ipfw tcpflags ${f}: syn, ack, fin, rst, psh, urg`, f || o);
        mask.push(flag);
        if (!f.startsWith("!")) set.push(flag);
      }
      common.push("--tcp-flags", mask.join(","), set.length ? set.join(",") : "NONE");
      i += 2;
    } else {
      fail(
        "import_unsupported",
        `ipfw option ${o} is not imported (in, out, via, recv, xmit, verrevpath, tcpflags, setup are)`,
        o,
      );
    }
  }
  // The hooks the rule applies to. verrevpath looks at incoming packets only: for an outgoing
  // one ipfw's match always succeeds, so `not verrevpath` never matches there.
  const hooks: ("in" | "out")[] = dir ? [dir] : ["in", "out"];
  if (iface?.how === "recv" && dir === "out")
    fail(
      "import_unsupported",
      "ipfw recv with out (the interface the packet came in on, tested on its way out) is not imported",
      "recv",
    );
  const rules: string[][] = [];
  for (const h of hooks) {
    if (iface?.how === "recv" && h === "out") continue;
    if (iface?.how === "xmit" && h === "in") continue;
    if (revpath === "bad" && h === "out") continue;
    const args = [...common];
    if (iface) args.unshift(h === "in" ? "-i" : "-o", iface.name);
    if (revpath && h === "in") args.push("-m", "rpfilter", ...(revpath === "bad" ? ["--invert"] : []));
    const chain = h === "in" ? "PREROUTING" : "POSTROUTING";
    if (log) rules.push(["-t", "mangle", "-A", chain, ...args, "-j", "LOG", "--log-prefix", "ipfw: "]);
    rules.push(["-t", "mangle", "-A", chain, ...args, "-j", "DROP"]);
  }
  if (rules.length === 0) fail("import_invalid_value", "ipfw: this rule never matches", "ipfw");
  // ipfw's rules cover both families: IPv6 is not passed around them as around iptables'.
  const both = { ...ctx, bothFamilies: true };
  const first = applyIptables(rules[0]!, both);
  for (const r of rules.slice(1)) applyIptables(r, both);
  return {
    ...first,
    reason: `ipfw rule as ${rules.map((r) => `iptables ${r.join(" ")}`).join("; ")}`,
  };
}
