// Log events from NFLOG groups (rules rendered with `log prefix "..." group N`, which is
// how LOGMARK and log actions reach userspace without the kernel log, and works inside
// network namespaces without net.netfilter.nf_log_all_netns).
//
// Reader: one `tcpdump -i nflog:N -w - -U --immediate-mode` per group, its pcap stream
// decoded here (nflog.ts). Measured: tcpdump's text output never prints the prefix or
// the mark (not even with -v), but the pcap records carry NFLOG's TLVs verbatim: prefix,
// packet mark, in/out interface index, timestamp, payload. Node has no netlink sockets
// without a native addon, and `nft monitor trace` needs nftrace rules, so tcpdump's
// pcap is the reliable source. The conntrack mark is not in tcpdump's records (NFULA_CT
// needs the listener to ask for conntrack data, tcpdump does not, and kernels without
// CONFIG_NETFILTER_NETLINK_GLUE_CT cannot send it): when a record has no NFULA_CT, the
// mark is looked up by the packet's tuple with `conntrack -G` (ctmark.ts: timeout, LRU
// cache, rate cap). Unknown (lookup missed, failed or skipped by the rate cap; no tuple) is
// left unset: LogEvent.ctmark is `optional`, so the API stores NULL, while a found mark
// of 0 is sent as 0.
// Measured pitfall: never pass a small snaplen (-s 512). libpcap sizes its netlink
// receive buffer from it, and the kernel batches NFLOG messages (several per netlink
// packet under load): the batch is truncated and tcpdump writes garbage records and
// loses packets. The default snaplen (262144) keeps every message whole.

import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import type { LogEvent } from "../../protocol/agent.ts";
import type { Logger } from "../../runtime/log.ts";
import { errorText } from "../errors.ts";
import {
  ctTuple,
  decodeIp,
  decodeNflog,
  LINKTYPE_NFLOG,
  PcapStream,
  type IpHeader,
  type NflogPacket,
} from "./nflog.ts";
import { CtMarkLookup, type CtMarkOptions } from "./ctmark.ts";

export interface LogReaderOptions {
  groups: number[];
  netns?: string;
  log: Logger;
  onEvents: (events: LogEvent[]) => void;
  /** Every decoded packet, payload included, before it becomes an event (spaKnock knocks). */
  onPacket?: (p: NflogPacket) => void;
  tcpdumpPath?: string;
  /** setpriv (util-linux): tcpdump dies with the agent; undefined = not installed (it may outlive a killed agent). */
  setprivPath?: string;
  /** /etc/passwd's text, read to find the user a root agent's tcpdump runs as (tests). */
  passwd?: string;
  /** Bounds of the conntrack -G lookups (netns and log are taken from here). */
  ctmark?: Omit<CtMarkOptions, "netns" | "log">;
  /** false: no conntrack -G lookups (conntrack is not installed); events carry no ctmark. */
  ctmarkLookup?: boolean;
}

export class LogReader {
  private procs: ChildProcess[] = [];
  private ifnames = new Map<number, string>();
  private stopped = false;
  private readonly ct: CtMarkLookup;
  /** Group -> why its tcpdump could not start or exited (reported to the API, never silent). */
  readonly failures = new Map<number, string>();

  constructor(private readonly o: LogReaderOptions) {
    this.ct = new CtMarkLookup({ ...o.ctmark, ...(o.netns ? { netns: o.netns } : {}), log: o.log });
  }

  /** Start one tcpdump per group; resolves once each printed "listening" (or failed). */
  async start(): Promise<void> {
    await this.refreshIfnames();
    await Promise.all(this.o.groups.map((g) => this.startGroup(g)));
  }

  private argv(group: number): { file: string; args: string[] } {
    const td = [
      ...this.dieWithAgent(),
      this.o.tcpdumpPath ?? "tcpdump",
      "-i",
      `nflog:${group}`,
      "-w",
      "-",
      "-U",
      "--immediate-mode",
      "-q",
    ];
    return this.o.netns
      ? { file: "ip", args: ["netns", "exec", this.o.netns, ...td] }
      : { file: td[0]!, args: td.slice(1) };
  }

  /**
   * A SIGKILLed agent runs no code, so its tcpdump would live on as an orphan holding its
   * NFLOG group (the next agent's reader could not bind it): setpriv gives tcpdump a
   * parent-death signal, which the kernel sends when the thread that spawned it exits (node
   * spawns from the main thread: when the agent dies). The kernel clears that signal when a
   * process changes its uid, so tcpdump must not switch users itself: a root agent's setpriv
   * switches to the reader's user first (setresgid, setgroups, setresuid), keeps only
   * CAP_NET_ADMIN and CAP_NET_RAW as ambient capabilities, and sets the signal last, just
   * before exec (util-linux's order whatever the order of the options; measured with strace
   * on 2.38.1). tcpdump, not root, sees no uid to drop. Without CAP_SETUID setpriv fails
   * and the reader is reported as failed: it never runs as root. An agent run as the unit's
   * user has no uid to switch. Always no_new_privs (needs no capability: tcpdump can gain
   * nothing by exec), and when the agent may drop bounding capabilities (CAP_SETPCAP, as
   * root) a bounding set of CAP_NET_ADMIN and CAP_NET_RAW alone (the unit's user has that
   * bounding set already). Measured with setpriv 2.38.1: CapEff stays NET_ADMIN+NET_RAW,
   * NoNewPrivs 1, the parent-death signal still set.
   */
  private dieWithAgent(): string[] {
    if (!this.o.setprivPath) return [];
    const user = process.getuid?.() === 0 ? [...readerUser(this.o.passwd), ...READER_CAPS] : [];
    const bounding = holdsSetpcap() ? READER_BOUNDING : [];
    return [this.o.setprivPath, ...user, ...bounding, "--no-new-privs", "--pdeathsig", "KILL", "--"];
  }

  private startGroup(group: number): Promise<void> {
    const { file, args } = this.argv(group);
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.procs.push(child);
    const pcap = new PcapStream();
    // Chunks are handed on in the order they arrived, each after its ct mark lookups.
    let delivered: Promise<void> = Promise.resolve();
    child.stdout!.on("data", (chunk: Buffer) => {
      const events: Promise<LogEvent>[] = [];
      try {
        pcap.push(chunk, (data, ms, le) => {
          if (pcap.linktype !== LINKTYPE_NFLOG) return;
          const p = decodeNflog(data, ms, le);
          if (!p) return;
          this.o.onPacket?.(p);
          const ev: LogEvent = {
            unixMs: String(p.unixMs),
            prefix: p.prefix,
            level: 0,
            mark: p.mark,
            ...(p.ctmark !== undefined && { ctmark: p.ctmark }),
            iif: p.indev !== undefined ? this.ifname(p.indev) : "",
            oif: p.outdev !== undefined ? this.ifname(p.outdev) : "",
            ...eventFields(decodeIp(p.payload)),
          };
          const tuple = p.ctmark === undefined && this.o.ctmarkLookup !== false ? ctTuple(p.payload) : undefined;
          events.push(
            tuple
              ? this.ct.lookup(tuple).then(
                  (m) => (m === undefined ? ev : { ...ev, ctmark: m }),
                  () => ev,
                )
              : Promise.resolve(ev),
          );
        });
      } catch (e) {
        this.o.log.error({ group, err: errorText(e) }, "cannot decode tcpdump output");
        child.kill("SIGTERM");
      }
      if (events.length === 0) return;
      const all = Promise.all(events);
      delivered = delivered.then(async () => {
        const evs = await all;
        try {
          this.o.onEvents(evs);
        } catch (e) {
          this.o.log.error({ group, err: errorText(e) }, "log event consumer failed");
        }
      });
    });
    let err = "";
    return new Promise((resolve) => {
      // Bounded: a tcpdump that neither listens nor exits must not hold up the agent's start.
      const timer = setTimeout(() => {
        this.o.log.warn({ group }, "tcpdump has not said it is listening after 10 s; going on");
        resolve();
      }, 10_000);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      child.stderr!.on("data", (b: Buffer) => {
        err += b.toString();
        if (err.length > 4096) err = err.slice(-2048);
        if (/listening on/.test(err)) done();
      });
      child.on("error", (e) => {
        this.failures.set(group, `tcpdump could not start: ${errorText(e)}`);
        this.o.log.error(
          { group, err: errorText(e) },
          "cannot start tcpdump for NFLOG: log events of this group are lost",
        );
        done();
      });
      child.on("close", (code, signal) => {
        if (!this.stopped) {
          const last =
            err
              .trim()
              .split("\n")
              .filter((l) => !/^(listening on|\d+ packets)/.test(l))
              .pop() ?? "";
          this.failures.set(
            group,
            `tcpdump exited (${signal ?? `code ${code}`})${last ? `: ${last.slice(0, 300)}` : ""}`,
          );
          this.o.log.error(
            { group, code, stderr: err.slice(-300) },
            "NFLOG reader exited: log events of this group are lost",
          );
        }
        done();
      });
    });
  }

  private ifname(index: number): string {
    const n = this.ifnames.get(index);
    if (n === undefined) void this.refreshIfnames();
    return n ?? String(index);
  }

  /** ifindex -> name, in the managed namespace (`ip -o link`). */
  private refreshIfnames(): Promise<void> {
    const args = [...(this.o.netns ? ["-n", this.o.netns] : []), "-o", "link", "show"];
    return new Promise((resolve) => {
      const c = spawn("ip", args, { stdio: ["ignore", "pipe", "ignore"] });
      let out = "";
      c.stdout!.on("data", (b: Buffer) => (out += b.toString()));
      c.on("error", () => resolve());
      c.on("close", () => {
        for (const line of out.split("\n")) {
          const m = /^(\d+):\s+([^:@\s]+)/.exec(line);
          if (m) this.ifnames.set(Number(m[1]), m[2]!);
        }
        resolve();
      });
    });
  }

  /** Stop the readers this object started (by their own handles, never by name). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once("close", () => resolve());
            p.kill("SIGTERM");
          }),
      ),
    );
    this.procs = [];
    this.ct.flushReport();
  }

  /** ct mark lookups started / skipped by the rate cap (for tests and diagnostics). */
  ctLookups(): { started: number; skipped: number } {
    return { started: this.ct.started, skipped: this.ct.skipped };
  }
}

const READER_CAPS = ["--inh-caps", "+net_admin,+net_raw", "--ambient-caps", "+net_admin,+net_raw"];
const READER_BOUNDING = ["--bounding-set", "-all,+net_admin,+net_raw"];

/** CAP_SETPCAP (bit 8) in the effective set of `status` (/proc/self/status by default). */
export function holdsSetpcap(status?: string): boolean {
  let text = status;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/status", "utf8");
    } catch {
      return false;
    }
  }
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(text)?.[1];
  return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 8n)) !== 0n;
}

/**
 * setpriv's options that switch a root agent's tcpdump to the `tcpdump` user (the one
 * Debian's package creates and tcpdump itself drops to), by its numeric ids in /etc/passwd.
 * A host without that user gets uid/gid 65534 (nobody/nogroup) and no supplementary groups:
 * never root.
 */
export function readerUser(passwd?: string): string[] {
  let text = passwd;
  if (text === undefined) {
    try {
      text = readFileSync("/etc/passwd", "utf8");
    } catch {
      text = "";
    }
  }
  for (const line of text.split("\n")) {
    const [name, , uid, gid] = line.split(":");
    // Numerically: "00" is uid 0 too.
    if (
      name === "tcpdump" &&
      /^\d+$/.test(uid ?? "") &&
      /^\d+$/.test(gid ?? "") &&
      Number(uid) !== 0 &&
      Number(gid) !== 0
    )
      return ["--reuid", String(Number(uid)), "--regid", String(Number(gid)), "--init-groups"];
  }
  return ["--reuid", "65534", "--regid", "65534", "--clear-groups"];
}

/** The header fields a log event carries (not decodeIp's offsets, which would land in the spool). */
function eventFields({ saddr, daddr, protocol, sport, dport, length }: IpHeader) {
  return { saddr, daddr, protocol, sport, dport, length };
}
