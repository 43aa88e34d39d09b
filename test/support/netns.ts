// Network-namespace lab for kernel tests. Every namespace gets a unique name
// (pal<pid>x<counter><random>n<k>), every command a timeout, every packet sender a count, and
// every namespace is deleted by cleanup(), which runs from the test's after()/finally
// AND, as a last resort, on process exit/SIGINT/SIGTERM. Veths are created directly
// inside the lab's namespaces (`ip -n A link add ... peer ... netns B`), so nothing is
// ever created in the root namespace; addresses (10.200.<k>.0/24, 2001:db8:<k>::/64)
// exist only inside them. Nothing here touches the root namespace's firewall.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  /** Resolve instead of rejecting on a non-zero exit. */
  allowFailure?: boolean;
}

const live = new Set<string>();
const liveProcs = new Set<ChildProcess>();
let hooked = false;

/** The per-namespace /etc of `ip netns exec` (see NetnsLab.etcFile); only lab names reach it. */
const etcDir = (ns: string) => `/etc/netns/${ns}`;

function emergencyCleanup(): void {
  for (const p of liveProcs) if (p.pid !== undefined && p.exitCode === null) p.kill("SIGKILL");
  for (const ns of live) {
    spawnSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 5000 });
    rmSync(etcDir(ns), { recursive: true, force: true });
  }
  live.clear();
}

function hookProcess(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", emergencyCleanup);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      emergencyCleanup();
      process.exit(sig === "SIGINT" ? 130 : 143);
    });
  }
}

/** Run argv (no shell) with a hard timeout; the child is killed by its own pid. */
export function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error("run: empty argv");
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    liveProcs.add(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.stdin.on("error", () => {});
    child.on("error", (e) => {
      clearTimeout(timer);
      liveProcs.delete(child);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      liveProcs.delete(child);
      const r = { code, stdout, stderr, timedOut };
      if ((code !== 0 || timedOut) && !opts.allowFailure) {
        reject(
          new Error(
            `${argv.join(" ")} ${timedOut ? `timed out after ${timeoutMs} ms` : `exited ${code}`}: ${stderr.trim()}`,
          ),
        );
      } else resolve(r);
    });
    child.stdin.end(opts.input ?? "");
  });
}

export interface Link {
  /** Interface names inside each namespace. */
  a: { ns: string; ifname: string; ip4: string; ip6: string };
  b: { ns: string; ifname: string; ip4: string; ip6: string };
  /** The /24 and /64 of the link. */
  net4: string;
  net6: string;
}

export interface Background {
  pid: number | undefined;
  stop(): Promise<void>;
  output(): string;
}

// UDP sender run inside a namespace with `ip netns exec NS node -e`: exactly `count`
// datagrams of `size` payload bytes, sequentially, then exit.
const UDP_SENDER = `
const dgram = require("node:dgram");
const [host, port, count, size] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
const buf = Buffer.alloc(Number(size), 0x61);
let sent = 0;
s.on("error", () => {});
(function next() {
  if (sent >= Number(count)) { s.close(); return; }
  s.send(buf, Number(port), host, (err) => { if (!err) sent++; else { s.close(); process.exitCode = 1; return; } setTimeout(next, 2); });
})();
`;

// ICMP/ICMPv6 echo over a raw socket (the machines have no ping binary): `count`
// requests of `size` payload bytes, each waiting at most `wait` seconds for its reply.
// Prints "sent received".
const PINGER = `
import socket, struct, sys, time, os
host, count, size, wait, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
v6 = ":" in host
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
def csum(b):
    if len(b) % 2: b += b"\\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return (~t) & 0xffff
received = 0
for seq in range(count):
    payload = bytes([0x61]) * size
    typ = 128 if v6 else 8
    hdr = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
    if not v6: hdr = struct.pack("!BBHHH", typ, 0, csum(hdr + payload), ident, seq)
    s.sendto(hdr + payload, (host, 0))
    deadline = time.time() + wait
    while True:
        left = deadline - time.time()
        if left <= 0: break
        s.settimeout(left)
        try: data, _ = s.recvfrom(65535)
        except socket.timeout: break
        icmp = data if v6 else data[(data[0] & 15) * 4:]
        if len(icmp) >= 8 and icmp[0] == (129 if v6 else 0) and struct.unpack("!HH", icmp[4:8]) == (ident, seq):
            received += 1; break
    if seq + 1 < count: time.sleep(interval)
print(count, received)
`;

// Lab ids are unique within the process by a counter (a process runs many labs: the
// corpus test one per file, and a 16-bit random suffix alone collided with a live lab in
// CI); the random part keeps them apart from namespaces a dead process with the same pid
// may have left behind.
let labCount = 0;
function newLabId(): string {
  return `pal${process.pid}x${(labCount++).toString(36)}${randomBytes(3).toString("hex")}`;
}

export class NetnsLab {
  id = newLabId();
  readonly namespaces: string[] = [];
  private links = 0;
  private procs: ChildProcess[] = [];

  /** A new empty namespace with lo up. Name: <lab id>n<k>. */
  async addNamespace(): Promise<string> {
    hookProcess();
    let ns = `${this.id}n${this.namespaces.length}`;
    // A name taken by a leftover namespace (a crashed run whose pid was reused): take a
    // fresh id, a bounded number of times, rather than fail the test or reuse it.
    for (let attempt = 0; ; attempt++) {
      const r = await run(["ip", "netns", "add", ns], { allowFailure: true });
      if (r.code === 0) break;
      if (this.namespaces.length > 0 || attempt >= 3 || !/File exists/.test(r.stderr)) {
        throw new Error(`ip netns add ${ns} exited ${r.code}: ${r.stderr.trim()}`);
      }
      this.id = newLabId();
      ns = `${this.id}n0`;
    }
    live.add(ns);
    this.namespaces.push(ns);
    await run(["ip", "-n", ns, "link", "set", "lo", "up"]);
    return ns;
  }

  /**
   * A file that programs run in `ns` read in place of /etc/<name>: `ip netns exec`
   * bind-mounts /etc/netns/<ns>/<name> over it (e.g. an empty `protocols`, a host without
   * netbase). Removed with the namespace.
   */
  etcFile(ns: string, name: string, content: string): void {
    this.own(ns);
    if (!/^[a-z0-9._-]+$/.test(name)) throw new Error(`etcFile: not a plain file name: ${name}`);
    mkdirSync(etcDir(ns), { recursive: true });
    writeFileSync(`${etcDir(ns)}/${name}`, content);
  }

  /** Run argv inside `ns` (`ip netns exec ns ...`), bounded by a timeout. */
  exec(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.own(ns);
    return run(["ip", "netns", "exec", ns, ...argv], opts);
  }

  /** nft inside `ns`, ruleset text on stdin when given. */
  nft(ns: string, args: string[], input?: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(ns, ["nft", ...args], { ...opts, ...(input !== undefined ? { input } : {}) });
  }

  /**
   * A veth pair between two lab namespaces with 10.200.<k>.1/24 + 2001:db8:<k>::1/64 on
   * `a` and .2 / ::2 on `b` (k counts links in this lab).
   */
  async link(a: string, b: string, names: { a?: string; b?: string } = {}): Promise<Link> {
    this.own(a);
    this.own(b);
    const k = ++this.links;
    if (k > 250) throw new Error("too many links in one lab");
    const ifa = names.a ?? `veth${k}a`;
    const ifb = names.b ?? `veth${k}b`;
    await run(["ip", "-n", a, "link", "add", ifa, "type", "veth", "peer", "name", ifb, "netns", b]);
    const link: Link = {
      a: { ns: a, ifname: ifa, ip4: `10.200.${k}.1`, ip6: `2001:db8:${k}::1` },
      b: { ns: b, ifname: ifb, ip4: `10.200.${k}.2`, ip6: `2001:db8:${k}::2` },
      net4: `10.200.${k}.0/24`,
      net6: `2001:db8:${k}::/64`,
    };
    for (const end of [link.a, link.b]) {
      await run(["ip", "-n", end.ns, "addr", "add", `${end.ip4}/24`, "dev", end.ifname]);
      // nodad: the address is usable at once instead of after ~2 s of duplicate detection.
      await run(["ip", "-n", end.ns, "-6", "addr", "add", `${end.ip6}/64`, "dev", end.ifname, "nodad"]);
      await run(["ip", "-n", end.ns, "link", "set", end.ifname, "up"]);
    }
    // The link-local address stays tentative for ~1 s after link-up, and neighbour
    // discovery needs it: wait (bounded) so the first IPv6 packet is not lost.
    for (const end of [link.a, link.b]) {
      for (let i = 0; i < 40; i++) {
        const r = await run(["ip", "-n", end.ns, "-6", "addr", "show", "dev", end.ifname, "tentative"]);
        if (r.stdout.trim() === "") break;
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    return link;
  }

  async enableForwarding(ns: string): Promise<void> {
    await this.exec(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  }

  /** Default routes (v4 and v6) in `ns` via a gateway inside the lab. */
  async defaultRoute(ns: string, via4: string, via6?: string): Promise<void> {
    this.own(ns);
    await run(["ip", "-n", ns, "route", "replace", "default", "via", via4]);
    if (via6) await run(["ip", "-n", ns, "-6", "route", "replace", "default", "via", via6]);
  }

  /** Two namespaces joined by one link: the usual client/server shape. */
  async pair(): Promise<{ client: string; server: string; link: Link }> {
    const client = await this.addNamespace();
    const server = await this.addNamespace();
    const link = await this.link(client, server);
    return { client, server, link };
  }

  /**
   * A pair seen from the server, whose firewall the test loads: `peer` sends to `dst` (the
   * server's IPv4 address) from inside `lan` (the link's /24).
   */
  async pairWithLan(): Promise<{ ns: string; peer: string; dst: string; lan: string }> {
    const p = await this.pair();
    return { ns: p.server, peer: p.client, dst: p.link.b.ip4, lan: p.link.net4 };
  }

  /** client -- router -- server, forwarding on in the router, default routes set. */
  async routed(): Promise<{ client: string; router: string; server: string; left: Link; right: Link }> {
    const client = await this.addNamespace();
    const router = await this.addNamespace();
    const server = await this.addNamespace();
    const left = await this.link(client, router);
    const right = await this.link(router, server);
    await this.enableForwarding(router);
    await this.defaultRoute(client, left.b.ip4, left.b.ip6);
    await this.defaultRoute(server, right.a.ip4, right.a.ip6);
    return { client, router, server, left, right };
  }

  /**
   * `count` ICMP (or ICMPv6 for a v6 address) echo requests (at most 100) with `size`
   * payload bytes (default 56: 84-byte IPv4 packets, 104-byte IPv6), each waiting at
   * most `waitS` (default 1) seconds for its reply.
   */
  async ping(
    from: string,
    to: string,
    opts: { count?: number; size?: number; waitS?: number; intervalS?: number } = {},
  ): Promise<{ sent: number; received: number }> {
    const count = Math.min(opts.count ?? 3, 100);
    const wait = opts.waitS ?? 1;
    const argv = [
      "/usr/bin/python3",
      "-c",
      PINGER,
      to,
      String(count),
      String(opts.size ?? 56),
      String(wait),
      String(opts.intervalS ?? 0.01),
    ];
    const r = await this.exec(from, argv, { timeoutMs: (count * (wait + 0.1) + 5) * 1000 });
    const m = /^(\d+) (\d+)$/m.exec(r.stdout);
    if (!m) throw new Error(`pinger printed no summary: ${r.stdout} ${r.stderr}`);
    return { sent: Number(m[1]), received: Number(m[2]) };
  }

  /** One TCP connect attempt with a timeout (`nc -z`); true when the handshake completed. */
  async tcpConnect(from: string, host: string, port: number, opts: { timeoutS?: number } = {}): Promise<boolean> {
    const w = String(opts.timeoutS ?? 1);
    const r = await this.exec(from, ["nc", "-z", "-n", "-w", w, host, String(port)], {
      allowFailure: true,
      timeoutMs: (Number(w) + 3) * 1000,
    });
    return r.code === 0;
  }

  /** `count` UDP datagrams (at most 10000) of `size` payload bytes from `from`. */
  async sendUdp(from: string, host: string, port: number, opts: { count?: number; size?: number } = {}): Promise<void> {
    const count = Math.min(opts.count ?? 1, 10_000);
    await this.exec(
      from,
      [process.execPath, "-e", UDP_SENDER, host, String(port), String(count), String(opts.size ?? 32)],
      { timeoutMs: 10_000 + count * 5 },
    );
  }

  /**
   * Crafted TCP packets with hping3: flags like "SF" (SYN+FIN), "SR", "S", "R", "A".
   * Returns how many were sent and how many got an answer.
   */
  async tcpFlags(
    from: string,
    host: string,
    port: number,
    flags: string,
    opts: { count?: number; intervalUs?: number; source?: string } = {},
  ): Promise<{ sent: number; received: number }> {
    const count = Math.min(opts.count ?? 3, 1000);
    const map: Record<string, string> = { S: "-S", F: "-F", R: "-R", A: "-A", P: "-P", U: "-U", X: "-X", Y: "-Y" };
    const argv = ["hping3", "-q", "-c", String(count), "-i", `u${opts.intervalUs ?? 10_000}`, "-p", String(port)];
    for (const f of flags) {
      const flag = map[f];
      if (!flag) throw new Error(`unknown TCP flag letter ${f}`);
      argv.push(flag);
    }
    if (opts.source) argv.push("-a", opts.source);
    argv.push(host);
    const r = await this.exec(from, argv, {
      allowFailure: true,
      timeoutMs: 5000 + (count * (opts.intervalUs ?? 10_000)) / 1000 + 2000,
    });
    const m = /(\d+) packets transmitted, (\d+) packets received/.exec(r.stdout + r.stderr);
    if (!m) throw new Error(`hping3 printed no summary: ${r.stdout} ${r.stderr}`);
    return { sent: Number(m[1]), received: Number(m[2]) };
  }

  /**
   * A background process inside `ns` (e.g. a listener), killed by its pid on stop(),
   * on cleanup(), or after `maxLifetimeMs` (default 60 s), whichever comes first.
   */
  background(ns: string, argv: string[], opts: { maxLifetimeMs?: number } = {}): Background {
    this.own(ns);
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
    liveProcs.add(child);
    this.procs.push(child);
    let out = "";
    child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
    const exited = new Promise<void>((r) => child.on("close", () => r()));
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    };
    const timer = setTimeout(kill, opts.maxLifetimeMs ?? 60_000);
    child.on("close", () => {
      clearTimeout(timer);
      liveProcs.delete(child);
    });
    return {
      pid: child.pid,
      output: () => out,
      stop: async () => {
        kill();
        await exited;
      },
    };
  }

  /** Kill this lab's background processes and delete its namespaces. Idempotent. */
  async cleanup(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    this.procs = [];
    for (const ns of this.namespaces.splice(0)) {
      await run(["ip", "netns", "del", ns], { allowFailure: true, timeoutMs: 10_000 });
      rmSync(etcDir(ns), { recursive: true, force: true });
      live.delete(ns);
    }
  }

  private own(ns: string): void {
    if (!this.namespaces.includes(ns)) throw new Error(`namespace ${ns} does not belong to this lab`);
  }
}

/** A new lab; pair it with `after(() => lab.cleanup())` or try/finally. */
export function createLab(): NetnsLab {
  return new NetnsLab();
}

/** Run `fn` with a fresh lab and always clean it up. */
export async function withLab<T>(fn: (lab: NetnsLab) => Promise<T>): Promise<T> {
  const lab = createLab();
  try {
    return await fn(lab);
  } finally {
    await lab.cleanup();
  }
}
