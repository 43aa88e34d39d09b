// Log events from NFLOG groups (rules rendered with `log prefix "..." group N`, which is
// how LOGMARK and log actions reach userspace without the kernel log, and works inside
// network namespaces without net.netfilter.nf_log_all_netns).
//
// Reader: one `tcpdump -i nflog:N -w - -U --immediate-mode` per group, its pcap stream
// decoded here (nflog.ts). Measured: tcpdump's text output never prints the prefix or
// the mark (not even with -v), but the pcap records carry NFLOG's TLVs verbatim: prefix,
// packet mark, in/out interface index, timestamp, payload. Node has no netlink sockets
// without a native addon, and `nft monitor trace` needs nftrace rules, so tcpdump's
// pcap is the reliable source. Not available this way: the conntrack mark (NFULA_CT
// needs the listener to ask for conntrack data; tcpdump does not), so ctmark is 0.
// Measured pitfall: never pass a small snaplen (-s 512). libpcap sizes its netlink
// receive buffer from it, and the kernel batches NFLOG messages (several per netlink
// packet under load): the batch is truncated and tcpdump writes garbage records and
// loses packets. The default snaplen (262144) keeps every message whole.

import { spawn, type ChildProcess } from "node:child_process";
import type { LogEventMsg } from "./batch.ts";
import type { Logger } from "../log.ts";
import { errorText } from "../errors.ts";
import { decodeIp, decodeNflog, LINKTYPE_NFLOG, PcapStream } from "./nflog.ts";

export interface LogReaderOptions {
  groups: number[];
  netns?: string;
  log: Logger;
  onEvents: (events: LogEventMsg[]) => void;
  tcpdumpPath?: string;
}

export class LogReader {
  private procs: ChildProcess[] = [];
  private ifnames = new Map<number, string>();
  private stopped = false;

  constructor(private readonly o: LogReaderOptions) {}

  /** Start one tcpdump per group; resolves once each printed "listening" (or failed). */
  async start(): Promise<void> {
    await this.refreshIfnames();
    await Promise.all(this.o.groups.map((g) => this.startGroup(g)));
  }

  private argv(group: number): { file: string; args: string[] } {
    const td = [this.o.tcpdumpPath ?? "tcpdump", "-i", `nflog:${group}`, "-w", "-", "-U", "--immediate-mode", "-q"];
    return this.o.netns ? { file: "ip", args: ["netns", "exec", this.o.netns, ...td] } : { file: td[0]!, args: td.slice(1) };
  }

  private startGroup(group: number): Promise<void> {
    const { file, args } = this.argv(group);
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.procs.push(child);
    const pcap = new PcapStream();
    child.stdout!.on("data", (chunk: Buffer) => {
      const events: LogEventMsg[] = [];
      try {
        pcap.push(chunk, (data, ms, le) => {
          if (pcap.linktype !== LINKTYPE_NFLOG) return;
          const p = decodeNflog(data, ms, le);
          if (!p) return;
          events.push({
            unixMs: p.unixMs,
            prefix: p.prefix,
            level: 0,
            mark: p.mark,
            ctmark: 0,
            iif: p.indev !== undefined ? this.ifname(p.indev) : "",
            oif: p.outdev !== undefined ? this.ifname(p.outdev) : "",
            ...decodeIp(p.payload),
          });
        });
      } catch (e) {
        this.o.log.error("cannot decode tcpdump output", { group, error: errorText(e) });
        child.kill("SIGTERM");
      }
      if (events.length > 0) this.o.onEvents(events);
    });
    let err = "";
    return new Promise((resolve) => {
      const done = () => resolve();
      child.stderr!.on("data", (b: Buffer) => {
        err += b.toString();
        if (/listening on/.test(err)) done();
      });
      child.on("error", (e) => {
        this.o.log.error("cannot start tcpdump for NFLOG", { group, error: errorText(e) });
        done();
      });
      child.on("close", (code) => {
        if (!this.stopped) this.o.log.warn("NFLOG reader exited", { group, code, stderr: err.slice(-300) });
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
  }
}
