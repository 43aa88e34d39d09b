// What the running kernel and nft can do. Each expression is probed by `nft -c` of a
// tiny ruleset in a throwaway palisade_probe_* table: -c makes the kernel validate
// the batch (it loads the expression's module) and then abort it, so nothing is ever
// installed. A feature is supported exactly when its probe passes; the kernel's own
// message is kept for the ones that fail (e.g. "No such file or directory" for queue).

import { existsSync, readFileSync } from "node:fs";
import type { KernelFeatureName } from "../nft/kernel-features.ts";
import { check } from "./apply.ts";
import { NftError } from "./errors.ts";
import { runNft, type DriverOptions } from "./nft.ts";

const IN = "chain c { type filter hook input priority 0 ;";
const PRE = "chain c { type filter hook prerouting priority -150 ;";

/** Feature name -> [family, table body]. Bodies are fixed text, never user input. */
export const PROBES = {
  fib: ["inet", `${PRE} fib saddr . iif oif missing drop ; }`],
  meter: ["inet", `${IN} tcp flags syn meter m { ip saddr limit rate 10/second } accept ; }`],
  dynamic_set: [
    "inet",
    `set d { type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; size 1024 ; }\n${IN} update @d { ip saddr } ; }`,
  ],
  set_counters: [
    "inet",
    `set d { type ipv4_addr ; flags dynamic ; counter ; size 1024 ; }\n${IN} update @d { ip saddr } ; }`,
  ],
  interval_set: [
    "inet",
    `set s { type ipv4_addr ; flags interval ; elements = { 10.0.0.0/8 } ; }\n${IN} ip saddr @s drop ; }`,
  ],
  concat_set: [
    "inet",
    `set s { type ipv4_addr . inet_service ; elements = { 10.0.0.1 . 80 } ; }\n${IN} ip saddr . tcp dport @s drop ; }`,
  ],
  verdict_map: ["inet", `chain j { }\n${IN} ip saddr vmap { 10.0.0.1 : jump j } ; }`],
  named_counter: ["inet", `counter k { }\n${IN} counter name "k" ; }`],
  named_quota: ["inet", `quota q { over 1000 bytes }\n${IN} quota name "q" drop ; }`],
  quota: ["inet", `${IN} quota over 1000 bytes drop ; }`],
  limit: ["inet", `${IN} limit rate 1/second burst 2 packets accept ; }`],
  log: ["inet", `${IN} log prefix "probe" level warn ; }`],
  nflog: ["inet", `${IN} log group 1 prefix "probe" ; }`],
  ct: ["inet", `${IN} ct state established,related accept ; }`],
  ct_mark: ["inet", `${IN} ct mark set meta mark ; }`],
  ct_count: ["inet", `${IN} ct count over 10 drop ; }`],
  meta_mark: ["inet", `${IN} meta mark set 0x10 ; }`],
  reject: ["inet", `${IN} reject with icmpx type admin-prohibited ; }`],
  nat: ["inet", `chain c { type nat hook prerouting priority -100 ; tcp dport 80 dnat ip to 192.0.2.1:8080 ; }`],
  masquerade: ["inet", `chain c { type nat hook postrouting priority 100 ; masquerade ; }`],
  numgen: ["inet", `${IN} meta mark set numgen random mod 2 ; }`],
  jhash: ["inet", `${IN} meta mark set jhash ip saddr mod 2 ; }`],
  notrack: ["inet", `chain c { type filter hook prerouting priority -300 ; notrack ; }`],
  synproxy: ["inet", `${IN} tcp dport 80 synproxy mss 1460 wscale 7 timestamp sack-perm ; }`],
  osf: ["inet", `${IN} osf name "Linux" accept ; }`],
  tproxy: ["inet", `${PRE} meta l4proto tcp tproxy ip to 127.0.0.1:9999 ; }`],
  socket: ["inet", `${IN} socket transparent 1 accept ; }`],
  tcp_option: ["inet", `${IN} tcp option maxseg size 1460 accept ; }`],
  queue: ["inet", `${IN} queue num 0 bypass ; }`],
  flowtable: [
    "inet",
    `flowtable f { hook ingress priority 0 ; devices = { lo } ; }\nchain c { type filter hook forward priority 0 ; meta l4proto tcp flow add @f ; }`,
  ],
  dup: ["ip", `${PRE} dup to 127.0.0.2 ; }`],
  fwd: ["netdev", `chain c { type filter hook ingress device "lo" priority 0 ; fwd to "lo" ; }`],
  ip6: ["ip6", `${IN} ip6 saddr ::1 accept ; }`],
} as const satisfies Record<string, readonly [string, string]>;

export type Feature = keyof typeof PROBES;

type Probed<T extends Feature> = T;
/**
 * The features the API gates deploys on (nft/kernel-features.ts). Each must be a probe here,
 * since the agent reports only probes that passed: a name that is not fails to compile.
 */
export type GatedFeature = Probed<KernelFeatureName>;

export interface Capabilities {
  /** e.g. "1.0.6". */
  nftVersion: string | null;
  /** uname -r of the running kernel. */
  kernelRelease: string;
  /** The kernel has IPv6 and nftables accepts ip6 rules. */
  ipv6: boolean;
  features: Record<Feature, boolean>;
  /** nft's message for each unsupported feature. */
  reasons: Partial<Record<Feature, string>>;
  detectedAt: string;
}

export async function nftVersion(opts: DriverOptions = {}): Promise<string | null> {
  const { stdout } = await runNft(["--version"], opts);
  return /v(\d+\.\d+(?:\.\d+)*)/.exec(stdout)?.[1] ?? null;
}

function kernelRelease(): string {
  try {
    return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    return "unknown";
  }
}

export function probeText(feature: Feature): string {
  const [fam, body] = PROBES[feature];
  return `table ${fam} palisade_probe_${feature} {\n${body}\n}\n`;
}

/** Probe one feature; resolves true/false, or rejects only if nft cannot run at all. */
export async function probe(feature: Feature, opts: DriverOptions = {}): Promise<{ ok: boolean; reason?: string }> {
  try {
    await check(probeText(feature), { timeoutMs: 10_000, ...opts });
    return { ok: true };
  } catch (e) {
    if (
      e instanceof NftError &&
      (e.code === "nft_rejected" ||
        e.code === "kernel_feature_missing" ||
        e.code === "nft_failed" ||
        e.code === "set_full")
    ) {
      return { ok: false, reason: e.kernelMessage ?? e.message };
    }
    throw e;
  }
}

export async function detectCapabilities(opts: DriverOptions & { concurrency?: number } = {}): Promise<Capabilities> {
  const version = await nftVersion(opts);
  const names = Object.keys(PROBES).sort() as Feature[];
  const results = new Map<Feature, { ok: boolean; reason?: string }>();
  const queue = [...names];
  const workers = Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, async () => {
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) results.set(f, await probe(f, opts));
  });
  await Promise.all(workers);
  const features = {} as Record<Feature, boolean>;
  const reasons: Partial<Record<Feature, string>> = {};
  for (const f of names) {
    const r = results.get(f)!;
    features[f] = r.ok;
    if (!r.ok && r.reason) reasons[f] = r.reason;
  }
  return {
    nftVersion: version,
    kernelRelease: kernelRelease(),
    ipv6: existsSync("/proc/net/if_inet6") && features.ip6,
    features,
    reasons,
    detectedAt: new Date().toISOString(),
  };
}
