// iperf3 UDP runs for the packet benches (engine-throughput, forwarding): a server bound
// to one address in a namespace, a client sending 64-byte datagrams as fast as it can
// for a bounded time, the figures read from the client's JSON (whose UDP totals come
// from the server's report).
import type { Background, NetnsLab } from "../../test/support/netns.ts";

export const IPERF_PORT = 5201;

interface IperfSum {
  seconds: number;
  packets: number;
  lost_packets: number;
}

export interface UdpRun {
  /** Packets per second the server received: (sent - counted lost) / seconds. */
  received: number;
  /** Packets per second the client sent. */
  sent: number;
  /** Packets sent per CPU-second of the sending iperf3 (NaN when its JSON has no CPU share). */
  perCpu: number;
}

/**
 * One run from `clientNs` to `server`. `what` names the path in errors ("to 1M-address
 * blocklist", "through conntrack only"); `bind` pins the client's source address.
 */
export async function iperfUdp(
  lab: NetnsLab,
  clientNs: string,
  o: { server: string; bind?: string; seconds: number; what: string },
): Promise<UdpRun> {
  const argv = ["iperf3", "-c", o.server, ...(o.bind ? ["-B", o.bind] : []), "-p", String(IPERF_PORT)];
  argv.push("-u", "-l", "64", "-b", "0", "-t", String(o.seconds), "-J", "--connect-timeout", "3000");
  const r = await lab.exec(clientNs, argv, { timeoutMs: (o.seconds + 15) * 1000, allowFailure: true });
  let j: { end?: { sum?: IperfSum; cpu_utilization_percent?: { host_total?: number } }; error?: string };
  try {
    j = JSON.parse(r.stdout);
  } catch {
    throw new Error(
      `iperf3 ${o.what} printed no JSON (exit ${r.code}${r.timedOut ? ", timed out" : ""}): ${r.stderr.trim().slice(0, 300)}`,
    );
  }
  const s = j.end?.sum;
  if (j.error || !s || !(s.seconds > 0))
    throw new Error(`iperf3 ${o.what} failed: ${j.error ?? "no end.sum in its JSON"}`);
  const cpu = j.end?.cpu_utilization_percent?.host_total ?? NaN;
  return {
    received: (s.packets - s.lost_packets) / s.seconds,
    sent: s.packets / s.seconds,
    perCpu: s.packets / (s.seconds * (cpu / 100)),
  };
}

/** An iperf3 server in `ns` bound to `ip`, once it listens (bounded wait: 50 checks 100 ms apart). */
export async function startIperfServer(lab: NetnsLab, ns: string, ip: string, lifetimeMs: number): Promise<Background> {
  const server = lab.background(ns, ["iperf3", "-s", "-B", ip, "-p", String(IPERF_PORT)], {
    maxLifetimeMs: lifetimeMs,
  });
  for (let i = 0; i < 50; i++) {
    const r = await lab.exec(ns, ["ss", "-Hltn", `sport = :${IPERF_PORT}`], { allowFailure: true });
    if (r.stdout.includes(`:${IPERF_PORT}`)) return server;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`iperf3 server in ${ns} did not listen: ${server.output().slice(0, 300)}`);
}
