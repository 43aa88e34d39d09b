// The import's kernel proofs: the original host (the input loaded with iptables-restore, and
// ipset) beside the import's nftables and iptables renderings, each in a namespace of its own,
// probed with the same packets.
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { createLab, type Background, type Link, type NetnsLab } from "./netns.ts";
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

/** One client/server pair per variant in `kinds`, made one after the other in that order. */
export async function variantPairs<K extends Variant = Variant>(
  lab: NetnsLab,
  kinds: readonly K[] = VARIANTS as readonly Variant[] as readonly K[],
): Promise<Record<K, Pair>> {
  const pairs = {} as Record<K, Pair>;
  for (const k of kinds) pairs[k] = await lab.pair();
  return pairs;
}

/**
 * The lab of a test file whose tests share one pair per variant in `kinds`: registers the
 * file's before() that makes them (`pairs` is filled in then), then runs `setup` on them, and
 * after() that removes the lab. A file's own before() would not do for the setup: node 20 runs
 * a file's before() hooks concurrently (only the tests wait for all of them).
 */
export function variantLab<K extends Variant = Variant>(
  kinds?: readonly K[],
  setup?: (lab: NetnsLab, pairs: Record<K, Pair>) => Promise<void>,
): { lab: NetnsLab; pairs: Record<K, Pair> } {
  const lab = createLab();
  const pairs = {} as Record<K, Pair>;
  before(async () => {
    Object.assign(pairs, await variantPairs(lab, kinds));
    await setup?.(lab, pairs);
  });
  after(() => lab.cleanup());
  return { lab, pairs };
}

/**
 * `save` imported (no errors; the family from the dump), valid for nftables and rendered from
 * the validated policy for nftables and for iptables (no failsafe chains).
 */
export function importRenders(save: string) {
  const imported = importPolicy("iptables-save", save);
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.deepEqual(v.errors, []);
  const nft = renderNft(v.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  const ipt = renderIptables(v.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  return { v, nft: nft.text, ipt };
}

/**
 * Loads each variant on its server: `save` with `tool`-restore, the nftables render with nft
 * -f, the iptables render (its `tool` half) with `tool`-restore --noflush.
 */
export async function loadVariants(
  lab: NetnsLab,
  pairs: Record<Variant, Pair>,
  save: string,
  rendered: { nft: string; ipt: { text: string; text6: string } },
  tool: XtTool = "iptables",
): Promise<void> {
  await lab.exec(pairs.original.server, [`${tool}-restore`], { input: save });
  await lab.nft(pairs.nft.server, ["-f", "-"], rendered.nft);
  const ipt = tool === "ip6tables" ? rendered.ipt.text6 : rendered.ipt.text;
  await lab.exec(pairs.iptables.server, [`${tool}-restore`, "--noflush"], { input: ipt });
}

/**
 * loadVariants on servers that ran an earlier load (a file whose tests load their dumps one
 * after the other on the same pairs): first flushes each server's iptables and ip6tables filter
 * tables and its nftables ruleset.
 */
export async function reloadVariants(...args: Parameters<typeof loadVariants>): Promise<void> {
  const [lab, pairs] = args;
  for (const p of Object.values(pairs)) {
    await lab.exec(p.server, ["iptables", "-F"]);
    await lab.exec(p.server, ["ip6tables", "-F"]);
    await lab.nft(p.server, ["flush", "ruleset"]);
  }
  await loadVariants(...args);
}

export type XtTool = "iptables" | "ip6tables";

/**
 * Packets per rule from `tool`-save -c (of `table`, else of every table): one number per line
 * `pick` keeps, in the dump's order. At least one line must be kept (else the dump is shown).
 */
export async function xtCounts(
  lab: NetnsLab,
  ns: string,
  pick: (line: string) => boolean,
  opts: { tool?: XtTool; table?: string } = {},
): Promise<number[]> {
  const table = opts.table === undefined ? [] : ["-t", opts.table];
  const saved = (await lab.exec(ns, [`${opts.tool ?? "iptables"}-save`, "-c", ...table])).stdout;
  const lines = saved.split("\n").filter(pick);
  assert.ok(lines.length > 0, saved);
  return lines.map((l) => Number(/^\[(\d+):/.exec(l)![1]));
}

/** The named counters (`nft -j list counters`) as [name, packets], in the listing's order. */
export async function nftCounters(lab: NetnsLab, ns: string): Promise<Array<readonly [string, number]>> {
  const r = await lab.nft(ns, ["-j", "list", "counters"]);
  const objs = (JSON.parse(r.stdout) as { nftables: Array<{ counter?: { name: string; packets: number } }> }).nftables;
  return objs.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets] as const] : []));
}

/**
 * Packets of the nftables render's counted rules 1..n of chain input (a rule with
 * `counter: true` and no action gets the named counter input_count_N), or of the named
 * counters `n` in that order; -1 where one is missing.
 */
export async function nftCounts(lab: NetnsLab, ns: string, n: number | readonly string[]): Promise<number[]> {
  const by = new Map(await nftCounters(lab, ns));
  const names = typeof n === "number" ? Array.from({ length: n }, (_, i) => `input_count_${i + 1}`) : n;
  return names.map((name) => by.get(name) ?? -1);
}

/**
 * Asserts that each variant counted `want` with its target-less (count-only) rules: the
 * original and the iptables render in `tool`-save -c -t filter, the lines `pick` keeps; the
 * nftables render in its counters input_count_1..N.
 */
export async function assertVariantCounts(
  lab: NetnsLab,
  pairs: Record<Variant, Pair>,
  want: number[],
  pick: (line: string) => boolean,
  tool: XtTool = "iptables",
): Promise<void> {
  const counted = (l: string) => pick(l) && !/ -j /.test(l);
  const xt = (ns: string) => xtCounts(lab, ns, counted, { tool, table: "filter" });
  assert.deepEqual(await xt(pairs.original.server), want, `${tool}-restore of the dump`);
  assert.deepEqual(await nftCounts(lab, pairs.nft.server, want.length), want, "the nftables render");
  assert.deepEqual(await xt(pairs.iptables.server), want, `the ${tool} render`);
}

/**
 * A probe beside the rules under test: `table ip probe`, one chain at `hook` and `priority`
 * (policy accept), one counted rule `match counter comment "name"` per [name, match].
 */
export async function addProbe(
  lab: NetnsLab,
  ns: string,
  hook: "prerouting" | "input",
  priority: number,
  rules: ReadonlyArray<readonly [string, string]>,
): Promise<void> {
  const lines = rules.map(([name, match]) => `  ${match} counter comment "${name}"`);
  const chain = [` chain ${hook} {`, `  type filter hook ${hook} priority ${priority}; policy accept;`, ...lines, " }"];
  await lab.nft(ns, ["-f", "-"], ["table ip probe {", ...chain, "}", ""].join("\n"));
}

/** Packets the probe's rules counted, by name (-1 for a name with no rule). */
export async function probeCounts(lab: NetnsLab, ns: string, names: readonly string[]): Promise<number[]> {
  const out = JSON.parse((await lab.nft(ns, ["-j", "list", "table", "ip", "probe"])).stdout) as {
    nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
  };
  const by = new Map(
    out.nftables.flatMap((i) =>
      i.rule ? [[i.rule.comment!, i.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0] as const] : [],
    ),
  );
  return names.map((c) => by.get(c) ?? -1);
}

/**
 * The iptables-save text `save` (ip6tables-save's with `family` ipv6) on three client/server
 * pairs: loaded with iptables-restore (ip6tables-restore), imported as that family and
 * rendered for nftables, and rendered back by Palisade's iptables compiler (beside its
 * failsafe chains, as a host gets it; that family's half). Returns both renderings.
 */
export async function threePairs(
  lab: NetnsLab,
  save: string,
  family: "ipv4" | "ipv6" = "ipv4",
): Promise<{ pairs: Record<Variant, Pair>; nft: string; ipt: string }> {
  const tool: XtTool = family === "ipv6" ? "ip6tables" : "iptables";
  const pairs = await variantPairs(lab);
  await lab.exec(pairs.original.server, [`${tool}-restore`], { input: save });
  const imported = importPolicy("iptables-save", save, { family });
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok && v.policy, JSON.stringify(v.errors));
  const nft = await applyPolicy(lab, pairs.nft.server, v.policy);
  const rendered = renderIptables(v.policy, { failsafe: { apiAddresses: ["10.250.0.1"], apiPort: 8443 } });
  assert.ok(rendered.ok, JSON.stringify(rendered.ok ? [] : rendered.errors));
  const ipt = family === "ipv6" ? rendered.text6 : rendered.text;
  await lab.exec(pairs.iptables.server, [`${tool}-restore`, "--noflush"], { input: ipt, timeoutMs: 20_000 });
  return { pairs, nft, ipt };
}

/** Pings answered of 3 small (56-byte payload) and 3 large (300-byte) from the pair's client. */
export async function smallLargeAnswered(lab: NetnsLab, p: Pair): Promise<{ small: number; large: number }> {
  const small = await lab.ping(p.client, p.link.b.ip4, { count: 3, size: 56, waitS: 0.3 });
  const large = await lab.ping(p.client, p.link.b.ip4, { count: 3, size: 300, waitS: 0.3 });
  return { small: small.received, large: large.received };
}

/**
 * The conntrack-with-NAT scenario of the ctstate kernel tests: the server untracks UDP 7002
 * (raw) and DNATs UDP 7003 to its own 7004; `filter` are the INPUT rules under test.
 */
export function ctNatSave(server: string, filter: readonly string[]): string {
  return [
    "*raw",
    ":PREROUTING ACCEPT [0:0]",
    "-A PREROUTING -p udp -m udp --dport 7002 -j CT --notrack",
    "COMMIT",
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    `-A PREROUTING -p udp -m udp --dport 7003 -j DNAT --to-destination ${server}:7004`,
    "COMMIT",
    "*filter",
    ":INPUT ACCEPT [0:0]",
    ...filter,
    "COMMIT",
    "",
  ].join("\n");
}

/** Sends 3 UDP datagrams each to 7001 (tracked, no NAT), 7002 (untracked) and 7003 (DNAT'd) at argv[1]. */
export const CT_NAT_SEND = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in (7001, 7002, 7003):
    for _ in range(3):
        s.sendto(b"x", (sys.argv[1], port))
`;
