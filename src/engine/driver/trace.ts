// What-if traces, the kernel's own answer: load a rendering into a throwaway network
// namespace, inject crafted packets on the interface they name, and read `nft monitor`
// for their nftrace events. Two namespaces per run: the firewall ("fw", where the
// rendering is loaded) and the sender ("tx", the far end of a veth named like the
// packet's iif). Both are deleted in `finally`, and every step has a timeout.
//
// Ordering: after the packets of one repetition the sender emits a sentinel packet that
// the tracer's own table traces and drops; the sender is pinned to one CPU, so the
// kernel handles its packets one after another, and the sentinel's trace line means
// every earlier packet's trace is complete (no guessed sleeps).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { parseTraceLine, summarizeTrace, type PacketSpec, type PacketTrace, type TraceLine } from "../trace/index.ts";
import { NftError } from "./errors.ts";

export const TRACE_TABLE = "palisade_trace";
const SENTINEL_SRC = "192.0.2.254";
const SENTINEL_DST = "192.0.2.1";
const SENTINEL_PORT = 9;
const PEER_IF = "tracepeer0";

export interface TraceOptions {
  /** Rendered nft text (renderNft) loaded into the throwaway namespace. */
  rulesetText: string;
  /** Packets injected in order, in the same namespace (so the second sees what the first left). */
  packets: PacketSpec[];
  /** Repetitions of the sequence, each as new connections (conntrack flushed) on the same loaded ruleset (default 1, at most 200). */
  count?: number;
  /** Bound on the whole run (default 60 s + 1 s per repetition). */
  timeoutMs?: number;
}

export interface TraceResult {
  /** One entry per repetition: the traces of its packets, in order. */
  runs: PacketTrace[][];
}

export const CAP_MESSAGE =
  "trace needs CAP_NET_ADMIN (run as root or with the capability) to create a throwaway network namespace";

/** Run the trace; throws NftError("permission_denied") without CAP_NET_ADMIN. */
export async function trace(opts: TraceOptions): Promise<TraceResult> {
  const count = opts.count ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 200)
    throw new NftError("invalid_argument", `count must be 1-200, got ${count}`);
  if (opts.packets.length === 0 || opts.packets.length > 20)
    throw new NftError("invalid_argument", "trace takes 1-20 packets");
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000 + count * 1000);
  const id = `palisade-trace-${process.pid}-${randomBytes(3).toString("hex")}`;
  const fw = `${id}-fw`;
  const tx = `${id}-tx`;
  const made: string[] = [];
  hookExit();
  const senders: Senders = {};
  try {
    const add = await exec(["ip", "netns", "add", fw], deadline, true);
    if (add.code !== 0) {
      if (/Operation not permitted|Permission denied/i.test(add.stderr))
        throw new NftError("permission_denied", CAP_MESSAGE);
      throw new NftError("nft_failed", `cannot create a network namespace for the trace: ${add.stderr.trim()}`);
    }
    made.push(fw);
    live.add(fw);
    await exec(["ip", "netns", "add", tx], deadline);
    made.push(tx);
    live.add(tx);
    const ifaces = await setupLinks(fw, tx, opts.packets, deadline);
    if (opts.packets.some((p) => p.from === "wire")) senders.wire = startSender(tx, "wire", deadline);
    if (opts.packets.some((p) => p.from === "local")) senders.local = startSender(fw, "local", deadline);
    await nftLoad(fw, opts.rulesetText, deadline);
    const runs: PacketTrace[][] = [];
    for (let i = 0; i < count; i++) runs.push(await oneRun(fw, opts, ifaces, senders, deadline));
    return { runs };
  } finally {
    senders.wire?.stop();
    senders.local?.stop();
    for (const ns of made) {
      await exec(["ip", "netns", "del", ns], Date.now() + 10_000, true).catch(() => undefined);
      live.delete(ns);
    }
  }
}

// Namespaces of traces in flight, deleted synchronously if the process exits mid-trace
// (a CLI interrupted by Ctrl-C exits through process.exit, which runs this).
const live = new Set<string>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const ns of live) spawnSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 5000 });
  });
}

interface Ifaces {
  /** iif name -> MAC address of the firewall's end of its veth, and the sender's interface. */
  macs: Map<string, { mac: string; peer: string }>;
}

async function setupLinks(fw: string, tx: string, packets: PacketSpec[], deadline: number): Promise<Ifaces> {
  const macs = new Map<string, { mac: string; peer: string }>();
  await exec(["ip", "-n", fw, "link", "set", "lo", "up"], deadline);
  await exec(["ip", "-n", tx, "link", "set", "lo", "up"], deadline);
  await exec(
    ["ip", "netns", "exec", fw, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"],
    deadline,
  );
  // Every interface a packet names is the firewall's end of a veth whose peer sits in the sender
  // namespace (dummy links need a module some kernels lack). Postrouting runs before neighbour
  // resolution, so a packet routed out of one is traced to the end even though nothing answers.
  const veth = async (name: string): Promise<void> => {
    const peer = `${PEER_IF.slice(0, -1)}${macs.size}`;
    await exec(["ip", "-n", fw, "link", "add", name, "type", "veth", "peer", "name", peer, "netns", tx], deadline);
    await exec(["ip", "-n", fw, "link", "set", name, "up"], deadline);
    await exec(["ip", "-n", tx, "link", "set", peer, "up"], deadline);
    const show = await exec(["ip", "-n", fw, "-j", "link", "show", name], deadline);
    const mac = (JSON.parse(show.stdout) as Array<{ address: string }>)[0]!.address;
    macs.set(name, { mac, peer });
  };
  for (const p of packets) {
    if (p.iif !== undefined && !macs.has(p.iif)) {
      await veth(p.iif);
      // Replies (resets, ICMP errors) and forwarded packets without an oif leave by the way they came.
      if (macs.size === 1) {
        await exec(["ip", "-n", fw, "route", "replace", "default", "dev", p.iif], deadline);
        await exec(["ip", "-n", fw, "-6", "route", "replace", "default", "dev", p.iif], deadline, true);
      }
    }
  }
  const local = new Set<string>();
  let sentinelRoute = false;
  for (const p of packets) {
    if (p.from === "local" && !local.has(p.src)) {
      // A packet the firewall sends has one of the firewall's own addresses as its source.
      local.add(p.src);
      await addLocalAddress(fw, p, p.src, deadline);
    }
    if (p.oif !== undefined) {
      if (!macs.has(p.oif)) await veth(p.oif);
      await exec(
        ["ip", "-n", fw, ...(p.family === "ipv6" ? ["-6"] : []), "route", "replace", p.dst, "dev", p.oif],
        deadline,
      );
      if (p.from === "local" && !sentinelRoute) {
        // The local sentinel needs a route to leave by; the tracer's output chain drops it before it does.
        sentinelRoute = true;
        await exec(["ip", "-n", fw, "route", "replace", `${SENTINEL_DST}/32`, "dev", p.oif], deadline);
      }
    } else if (!local.has(p.dst)) {
      local.add(p.dst);
      // No oif: the destination is the firewall itself.
      await addLocalAddress(fw, p, p.dst, deadline);
    }
  }
  return { macs };
}

async function addLocalAddress(fw: string, p: PacketSpec, address: string, deadline: number): Promise<void> {
  const addr = p.family === "ipv6" ? [`${address}/128`, "nodad"] : [`${address}/32`];
  const r = await exec(["ip", "-n", fw, "addr", "add", addr[0]!, "dev", "lo", ...addr.slice(1)], deadline, true);
  if (r.code !== 0 && !/File exists|already assigned/.test(r.stderr))
    throw new NftError("nft_failed", `cannot add ${address} to the trace namespace: ${r.stderr.trim()}`);
}

function traceTableText(packets: PacketSpec[]): string {
  const rules = new Set<string>();
  for (const p of packets) {
    const ip = p.family === "ipv6" ? "ip6" : "ip";
    rules.add(`  ${ip} saddr ${p.src} ${ip} daddr ${p.dst} meta nftrace set 1`);
  }
  const sentinel = `  ip saddr ${SENTINEL_SRC} udp sport ${SENTINEL_PORT} udp dport ${SENTINEL_PORT} meta nftrace set 1 drop`;
  // Wire packets are marked in prerouting, the firewall's own in output, both before every Palisade
  // chain. Last-priority chains make the trace print the headers after NAT (a DNAT's or SNAT's choice).
  return [
    `add table inet ${TRACE_TABLE}`,
    `delete table inet ${TRACE_TABLE}`,
    `table inet ${TRACE_TABLE} {`,
    ` chain pre {`,
    `  type filter hook prerouting priority -500; policy accept;`,
    sentinel,
    ...rules,
    ` }`,
    ` chain out {`,
    `  type filter hook output priority -500; policy accept;`,
    sentinel,
    ...rules,
    ` }`,
    ` chain in_last { type filter hook input priority 1000; policy accept; }`,
    ` chain fwd_last { type filter hook forward priority 1000; policy accept; }`,
    ` chain post_last { type filter hook postrouting priority 1000; policy accept; }`,
    `}`,
    "",
  ].join("\n");
}

async function oneRun(
  fw: string,
  opts: TraceOptions,
  ifaces: Ifaces,
  senders: Senders,
  deadline: number,
): Promise<PacketTrace[]> {
  // Each repetition is a new connection (conntrack flushed) on the same ruleset: sets, counters and
  // numgen counters carry over, as on a router seeing the same packets again (round-robin shows its turns).
  await exec(["ip", "netns", "exec", fw, "conntrack", "-F"], deadline, true);
  // The monitor starts after the load so it knows the rules' text; it is ready once it echoes the tracer's table.
  const monitor = startMonitor(fw, deadline);
  try {
    // nft monitor prints nothing when it has subscribed, so (re)load the tracer's table until
    // the monitor echoes it: bounded in count, and a slow start costs only another attempt.
    const readyRule = `add rule inet ${TRACE_TABLE} pre ip saddr ${SENTINEL_SRC}`;
    for (let attempt = 1; ; attempt++) {
      const echoed = monitor.seenCount((l) => l.startsWith(readyRule));
      await nftLoad(fw, traceTableText(opts.packets), deadline);
      if (await monitor.waitFor((l) => l.startsWith(readyRule), 250 * attempt, echoed)) break;
      if (attempt >= 12) throw new NftError("nft_timeout", "nft monitor did not start in the trace namespace");
    }
    // Only the sentinel rules drop in the tracer's table (nft prints them as "unknown rule": they were added after the monitor's cache).
    const isSentinel = (l: string) => {
      const t = parseTraceLine(l);
      return t !== undefined && t.table === TRACE_TABLE && t.kind === "rule" && t.verdict === "drop";
    };
    // Consecutive packets of one origin go out together from one sender, then its sentinel; the next
    // segment starts only once that sentinel is traced, so packets from the two senders stay in order.
    for (const segment of segments(opts.packets)) {
      const seen = monitor.seenCount(isSentinel);
      const sentinelSeen = monitor.waitFor(isSentinel, undefined, seen);
      // Awaited below; when the send fails first, its error is the one reported, not this one.
      sentinelSeen.catch(() => undefined);
      if (segment[0]!.from === "local") {
        await senders.local!.send({
          packets: segment,
          sentinel: { src: SENTINEL_SRC, dst: SENTINEL_DST, port: SENTINEL_PORT },
        });
      } else {
        const first = ifaces.macs.get(segment[0]!.iif!)!;
        await senders.wire!.send({
          packets: segment.map((p) => ({
            ...p,
            mac: ifaces.macs.get(p.iif!)!.mac,
            peer: ifaces.macs.get(p.iif!)!.peer,
          })),
          sentinel: { mac: first.mac, peer: first.peer, src: SENTINEL_SRC, dst: SENTINEL_DST, port: SENTINEL_PORT },
        });
      }
      await sentinelSeen;
    }
    return assign(opts.packets, monitor.lines());
  } finally {
    monitor.stop();
  }
}

function segments(packets: PacketSpec[]): PacketSpec[][] {
  const out: PacketSpec[][] = [];
  for (const p of packets) {
    const last = out[out.length - 1];
    if (last && last[0]!.from === p.from) last.push(p);
    else out.push([p]);
  }
  return out;
}

/** Group trace lines by trace id in order of first appearance; the k-th traced packet is the k-th spec. */
function assign(packets: PacketSpec[], raw: string[]): PacketTrace[] {
  const byId = new Map<string, TraceLine[]>();
  for (const l of raw) {
    const t = parseTraceLine(l);
    if (!t) continue;
    const list = byId.get(t.id) ?? [];
    list.push(t);
    byId.set(t.id, list);
  }
  // Sentinel ids have only tracer lines with its address; drop ids whose first packet line is the sentinel's.
  const groups = [...byId.values()].filter(
    (g) => !g.some((t) => t.kind === "packet" && t.text.includes(`saddr ${SENTINEL_SRC} `)),
  );
  return packets.map((p, i) => {
    const g = groups[i];
    if (!g)
      throw new NftError(
        "unexpected_output",
        `packet ${i + 1} (${p.text}) never reached netfilter in the trace namespace`,
      );
    return summarizeTrace(p.text, g, TRACE_TABLE);
  });
}

async function nftLoad(ns: string, text: string, deadline: number): Promise<void> {
  const r = await exec(["ip", "netns", "exec", ns, "nft", "-f", "-"], deadline, true, text);
  if (r.code !== 0)
    throw new NftError("nft_rejected", `the trace namespace refused the ruleset: ${r.stderr.trim().split("\n")[0]}`);
}

interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(argv: string[], deadline: number, allowFailure = false, input?: string): Promise<ExecResult> {
  const left = deadline - Date.now();
  if (left <= 0) return Promise.reject(new NftError("nft_timeout", "the trace did not finish in time"));
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C" },
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), left);
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.stdin.on("error", () => {});
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new NftError(
          "nft_not_found",
          `cannot run ${argv[0]}: ${e.message}; trace needs iproute2, nftables, conntrack and python3-scapy`,
          { cause: e },
        ),
      );
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0 && !allowFailure) {
        if (/Operation not permitted|Permission denied/i.test(stderr))
          reject(new NftError("permission_denied", CAP_MESSAGE));
        else reject(new NftError("nft_failed", `${argv.join(" ")} exited ${code}: ${stderr.trim()}`));
      } else resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? "");
  });
}

interface Monitor {
  /** Resolves true once a line after the first `skip` matching ones matches; false after `withinMs` when given. */
  waitFor(pred: (line: string) => boolean, withinMs?: number, skip?: number): Promise<boolean>;
  seenCount(pred: (line: string) => boolean): number;
  lines(): string[];
  stop(): void;
}

function startMonitor(ns: string, deadline: number): Monitor {
  const child = spawn("ip", ["netns", "exec", ns, "nft", "monitor"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, LC_ALL: "C" },
  });
  const seen: string[] = [];
  const waiters: Array<{ pred: (l: string) => boolean; resolve: (ok: boolean) => void; reject: (e: Error) => void }> =
    [];
  let stderr = "";
  let closed: Error | undefined;
  const timer = setTimeout(
    () => fail(new NftError("nft_timeout", "nft monitor saw no end of the trace in time")),
    Math.max(0, deadline - Date.now()),
  );
  const fail = (e: Error) => {
    closed ??= e;
    for (const w of waiters.splice(0)) w.reject(e);
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  createInterface({ input: child.stdout }).on("line", (line) => {
    if (process.env.PALISADE_TRACE_DEBUG) process.stderr.write(`monitor: ${line}\n`);
    seen.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.pred(line)) waiters.splice(i, 1)[0]!.resolve(true);
    }
  });
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  child.on("error", (e) => fail(new NftError("nft_not_found", `cannot run nft monitor: ${e.message}`)));
  child.on("close", () => {
    clearTimeout(timer);
    fail(new NftError("nft_failed", `nft monitor ended: ${stderr.trim()}`));
  });
  return {
    waitFor(pred, withinMs, skip = 0) {
      if (seen.filter(pred).length > skip) return Promise.resolve(true);
      if (closed) return Promise.reject(closed);
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: (ok: boolean) => (clearTimeout(t), resolve(ok)),
          reject: (e: Error) => (clearTimeout(t), reject(e)),
        };
        const t =
          withinMs === undefined
            ? undefined
            : setTimeout(() => {
                const i = waiters.indexOf(w);
                if (i !== -1) waiters.splice(i, 1);
                resolve(false);
              }, withinMs);
        waiters.push(w);
      });
    },
    seenCount: (pred) => seen.filter(pred).length,
    lines: () => [...seen],
    stop() {
      clearTimeout(timer);
      closed ??= new Error("stopped");
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

// The senders: one python3 + scapy process per origin and trace (scapy takes seconds to import),
// one JSON request per line on stdin, "sent" per line on stdout. Pinned to one CPU (see header).
// "wire" runs in the sender namespace and writes Ethernet frames to the veth peer of the packet's
// iif; "local" runs in the firewall namespace and sends through a raw IP socket, so its packets take
// the firewall's own output path (route lookup, output hook, postrouting), as a local process's would.
const SENDER = String.raw`
import os, sys, json, socket
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from scapy.all import Ether, IP, IPv6, TCP, UDP, ICMP, ICMPv6Unknown, Raw, sendp, conf
conf.verb = 0
MODE = sys.argv[1]
FL = {"syn": "S", "fin": "F", "rst": "R", "psh": "P", "ack": "A", "urg": "U", "ecn": "E", "cwr": "C"}
raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) if MODE == "local" else None
raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW) if MODE == "local" else None
def build(p):
    v6 = p["family"] == "ipv6"
    l3 = IPv6(src=p["src"], dst=p["dst"]) if v6 else IP(src=p["src"], dst=p["dst"])
    pr = p["protocol"]
    if pr == "tcp": l4 = TCP(sport=p["sport"], dport=p["dport"], flags="".join(FL[f] for f in p["flags"]))
    elif pr == "udp": l4 = UDP(sport=p["sport"], dport=p["dport"]) / Raw(b"palisade-trace")
    elif pr == "icmp":
        l4 = ICMP(type=p["icmpType"], code=p.get("icmpCode", 0))
        if p["icmpType"] in (13, 14): l4 = l4 / Raw(b"\0" * 12)
    else: l4 = ICMPv6Unknown(type=p["icmpType"], code=p.get("icmpCode", 0)) / Raw(b"\0" * 4)
    return l3 / l4
def send_local(family, dst, pkt):
    # A drop in output answers the sender with EPERM: that is the verdict, already traced.
    try:
        if family == "ipv6": raw6.sendto(bytes(pkt), (dst, 0, 0, 0))
        else: raw4.sendto(bytes(pkt), (dst, 0))
    except PermissionError: pass
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    s = req["sentinel"]
    sentinel = IP(src=s["src"], dst=s["dst"]) / UDP(sport=s["port"], dport=s["port"])
    for p in req["packets"]:
        if MODE == "local": send_local(p["family"], p["dst"], build(p))
        else: sendp(Ether(dst=p["mac"]) / build(p), iface=p["peer"])
    if MODE == "local": send_local("ipv4", s["dst"], sentinel)
    else: sendp(Ether(dst=s["mac"]) / sentinel, iface=s["peer"])
    print("sent", flush=True)
`;

interface Sender {
  send(req: unknown): Promise<void>;
  stop(): void;
}

interface Senders {
  wire?: Sender;
  local?: Sender;
}

function startSender(ns: string, mode: "wire" | "local", deadline: number): Sender {
  const child: ChildProcess = spawn("ip", ["netns", "exec", ns, "/usr/bin/python3", "-c", SENDER, mode], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, LC_ALL: "C" },
  });
  const pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  let stderr = "";
  let dead: Error | undefined;
  const timer = setTimeout(() => child.kill("SIGKILL"), Math.max(0, deadline - Date.now()));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line === "sent") pending.shift()?.resolve();
  });
  child.stderr!.on("data", (b: Buffer) => {
    stderr += b.toString();
    if (process.env.PALISADE_TRACE_DEBUG) process.stderr.write(`sender: ${b.toString()}`);
  });
  child.stdin!.on("error", () => {});
  const die = (e: Error) => {
    dead ??= e;
    for (const p of pending.splice(0)) p.reject(e);
  };
  child.on("error", (e) =>
    die(new NftError("nft_not_found", `cannot start the packet sender (python3 with scapy): ${e.message}`)),
  );
  child.on("close", () => {
    clearTimeout(timer);
    die(
      new NftError(
        "nft_failed",
        `the packet sender (python3 with scapy) stopped: ${stderr.trim().split("\n").slice(-1)[0] ?? ""}`,
      ),
    );
  });
  return {
    send(req) {
      if (dead) return Promise.reject(dead);
      return new Promise((resolve, reject) => {
        pending.push({ resolve, reject });
        child.stdin!.write(JSON.stringify(req) + "\n");
      });
    },
    stop() {
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}
