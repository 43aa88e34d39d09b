// The import's kernel proofs: the original host (the input loaded with iptables-restore, and
// ipset) beside the import's nftables and iptables renderings, each in a namespace of its own,
// probed with the same packets.
import assert from "node:assert/strict";
import type { Background, Link, NetnsLab } from "./netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";
import { applyPolicy } from "./nft-lab.ts";

/** What runs the rules: the input as it was, and the import's two renderings. */
export const VARIANTS = ["original", "nft", "iptables"] as const;
export type Variant = (typeof VARIANTS)[number];

/**
 * Starts `script` with python3 in `ns` and waits until it printed `listening` (its sockets
 * bound): a probe before then would be refused by the kernel, not by the rules under test.
 */
export async function listen(
  lab: NetnsLab,
  ns: string,
  script: string,
  opts: { maxLifetimeMs?: number } = {},
): Promise<Background> {
  const l = lab.background(ns, ["/usr/bin/python3", "-c", script], opts);
  for (let i = 0; i < 100 && !l.output().includes("listening"); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(l.output(), /listening/);
  return l;
}

/** A listener on IPv4 TCP `ports` that accepts nothing: the backlog completes each handshake. */
export function tcpListener(ports: readonly number[]): string {
  return `import socket,time\nkeep=[]\nfor p in [${ports.join(", ")}]:\n  s=socket.socket()\n  s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n  s.bind(('0.0.0.0', p))\n  s.listen(64)\n  keep.append(s)\nprint('listening', flush=True)\ntime.sleep(120)`;
}

export interface MemberLab {
  /** The client whose addresses the input's sets hold, and one they do not. */
  member: string;
  other: string;
  servers: Record<Variant, string>;
  /** Per server: the member's link and the other client's link to it. */
  links: Record<Variant, { member: Link; other: Link }>;
}

/** Two clients, each linked to one server per variant; every server listens on TCP `ports`. */
export async function memberLab(lab: NetnsLab, ports: readonly number[]): Promise<MemberLab> {
  const member = await lab.addNamespace();
  const other = await lab.addNamespace();
  const servers = {} as Record<Variant, string>;
  const links = {} as MemberLab["links"];
  const listeners: Promise<Background>[] = [];
  for (const k of VARIANTS) {
    servers[k] = await lab.addNamespace();
    links[k] = { member: await lab.link(member, servers[k]), other: await lab.link(other, servers[k]) };
    listeners.push(listen(lab, servers[k], tcpListener(ports)));
  }
  await Promise.all(listeners);
  return { member, other, servers, links };
}

/**
 * `dump` (iptables-save text, with the `ipset save` text `ipsets`) imported without errors,
 * valid, and rendered for both targets.
 */
export function importRendered(dump: string, ipsets?: string) {
  const r = importPolicy("iptables-save", dump, ipsets === undefined ? {} : { ipsets });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(validatePolicy(r.policy!).errors, []);
  const nft = renderNft(r.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  const ipt = renderIptables(r.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  return { r, nft: nft.text, ipt };
}

/** A client and its server, one link between them (NetnsLab.pair). */
export type Pair = Awaited<ReturnType<NetnsLab["pair"]>>;

/**
 * The IPv4 iptables-save text `save` on three client/server pairs: loaded with
 * iptables-restore, imported and rendered for nftables, and rendered back by Palisade's
 * iptables compiler (beside its failsafe chains, as a host gets it). Returns both renderings.
 */
export async function threePairs(
  lab: NetnsLab,
  save: string,
): Promise<{ pairs: Record<Variant, Pair>; nft: string; ipt: string }> {
  const pairs = { original: await lab.pair(), nft: await lab.pair(), iptables: await lab.pair() };
  await lab.exec(pairs.original.server, ["iptables-restore"], { input: save });
  const imported = importPolicy("iptables-save", save, { family: "ipv4" });
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok && v.policy, JSON.stringify(v.errors));
  const nft = await applyPolicy(lab, pairs.nft.server, v.policy);
  const ipt = renderIptables(v.policy, { failsafe: { apiAddresses: ["10.250.0.1"], apiPort: 8443 } });
  assert.ok(ipt.ok, JSON.stringify(ipt.ok ? [] : ipt.errors));
  await lab.exec(pairs.iptables.server, ["iptables-restore", "--noflush"], { input: ipt.text, timeoutMs: 20_000 });
  return { pairs, nft, ipt: ipt.text };
}

/** Pings answered of 3 small (56-byte payload) and 3 large (300-byte) from the pair's client. */
export async function smallLargeAnswered(lab: NetnsLab, p: Pair): Promise<{ small: number; large: number }> {
  const small = await lab.ping(p.client, p.link.b.ip4, { count: 3, size: 56, waitS: 0.3 });
  const large = await lab.ping(p.client, p.link.b.ip4, { count: 3, size: 300, waitS: 0.3 });
  return { small: small.received, large: large.received };
}
