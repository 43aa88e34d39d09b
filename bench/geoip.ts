// geoip: what the agent pays to load the largest countries into the kernel, and what a
// country set costs a forwarded packet (docs/geoip.md).
//
// Load: the policy table of a golden-like policy that tests US and CN, in a throwaway
// namespace; the agent's GeoKeeper (src/agent/geoip.ts, the nft driver, exactly as the agent
// runs it minus the gRPC stream) replaces a whole country (flush set + add element, one
// transaction, both families), against a raw `nft -f` of the same text written by hand.
// Medians of BENCH_RUNS (default 5) per country; the ratio is agent / raw of the same run.
// The data: the npm package @ip-location-db/geo-whois-asn-country when BENCH_GEOIP_DIR
// points at it (its two CSVs), else synthetic disjoint ranges (US 42,000 + 36,000, CN 9,000 + 4,000).
//
// Packet cost: 64-byte UDP (iperf3 -u -l 64 -b 0) from client through a router namespace
// to a server, with (a) no ruleset, (b) a forward chain testing `ip saddr @geo` on a set
// of BENCH_GEO_RANGES (default 50,000) IPv4 ranges that does not hold the client (every
// packet is looked up and accepted), (c) the same chain with a 1-element set. Received pps
// at the server, medians of BENCH_ROUNDS (default 5) rotated rounds of BENCH_SECONDS (3),
// and the median (and range) of each round's ratio to that round's no-ruleset run.
//
// Figures only, never pass/fail. Needs root. Usage: npm run bench -- bench/geoip.ts
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GeoKeeper } from "../src/agent/geoip.ts";
import { geoip, renderNft, type PolicyInput } from "../src/engine/index.ts";
import { Policy } from "../src/engine/policy/index.ts";
import { createLog } from "../src/runtime/log.ts";
import { createLab, type NetnsLab } from "../test/support/netns.ts";
import { iperfUdp, startIperfServer } from "./lib/iperf.ts";
import { note, step } from "./lib/progress.ts";
import { int, machine, median, ms, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const GEO_RANGES = Number(process.env.BENCH_GEO_RANGES ?? 50_000);
const CLIENT_IP = "203.0.113.2";
const ROUTER_EXT_IP = "203.0.113.1";

/** n disjoint IPv4 (or IPv6) intervals of 1-256 addresses with gaps, avoiding 10/8, 203.0.113/24 and 2001:db8::/32. */
function synthetic(n: number, fam: "ipv4" | "ipv6", seed: number): string[] {
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) % 1000) + 1;
  const out: string[] = [];
  let p = fam === "ipv4" ? 0x0b000000n : 0x2a00n << 112n; // 11.0.0.0 / 2a00::
  const step = fam === "ipv4" ? 1n : 1n << 64n;
  for (let i = 0; i < n; i++) {
    // Gaps of 64-64,000 addresses: 50,000 ranges end near 107.0.0.0, below 127/8 and 203.0.113/24.
    p += BigInt(rnd()) * step * 64n;
    const len = BigInt(rnd() % 256) * step + (step - 1n);
    out.push(geoip.intervalText(p, p + len, fam));
    p += len + 1n;
  }
  return out;
}

function countryData(): { source: string; data: Map<string, geoip.CountryIntervals> } {
  const dir = process.env.BENCH_GEOIP_DIR;
  if (dir) {
    const csv = ["ipv4", "ipv6"]
      .map((f) => readFileSync(join(dir, `geo-whois-asn-country-${f}.csv`), "utf8"))
      .join("\n");
    const t0 = performance.now();
    const r = geoip.parseGeoCsv(csv);
    if (!r.ok) throw new Error(r.error.message);
    note(`parsed ${int(r.value.ranges)} ranges in ${ms(performance.now() - t0)}`);
    return { source: `${dir} (${int(r.value.ranges)} ranges)`, data: r.value.countries };
  }
  return {
    source: "synthetic ranges (set BENCH_GEOIP_DIR to the npm package for real data)",
    data: new Map([
      ["US", { ipv4: synthetic(42_000, "ipv4", 1), ipv6: synthetic(36_000, "ipv6", 2) }],
      ["CN", { ipv4: synthetic(9_000, "ipv4", 3), ipv6: synthetic(4_000, "ipv6", 4) }],
    ]),
  };
}

const nftIn = (ns: string) => (args: string[], input?: string) =>
  execFileSync("ip", ["netns", "exec", ns, "nft", ...args], {
    maxBuffer: 256 * 1024 * 1024,
    ...(input === undefined ? {} : { input }),
  });

async function loadBench(lab: NetnsLab): Promise<string[][]> {
  const { source, data } = countryData();
  note(`data: ${source}`);
  const ns = await lab.addNamespace();
  const policy = Policy.parse({
    chains: {
      input: {
        hook: "input",
        rules: [{ match: { xt: { geoip: { source: ["US", "CN"] } } }, action: "drop" }],
      },
    },
  } as PolicyInput);
  const r = renderNft(policy);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const nft = nftIn(ns);
  nft(["-f", "-"], r.text);
  const keeper = new GeoKeeper(
    { netns: ns },
    (fn) => fn(),
    createLog("error"),
    () => true,
  );
  await keeper.resync();
  const rows: string[][] = [["country", "intervals v4+v6", "agent (GeoKeeper, whole country)", "raw nft -f", "ratio"]];
  for (const cc of ["US", "CN"]) {
    const d = data.get(cc);
    if (!d) continue;
    // The raw form: one `add element` per set, as a hand-written file would have it.
    const rawOne = [
      `flush set inet palisade ${geoip.geoSetName("ipv4", cc)}`,
      `add element inet palisade ${geoip.geoSetName("ipv4", cc)} { ${d.ipv4.join(", ")} }`,
      `flush set inet palisade ${geoip.geoSetName("ipv6", cc)}`,
      d.ipv6.length ? `add element inet palisade ${geoip.geoSetName("ipv6", cc)} { ${d.ipv6.join(", ")} }` : "",
    ].join("\n");
    const agent: number[] = [];
    const rawMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      note(`${cc} run ${i + 1}`);
      const t0 = performance.now();
      const a = await keeper.update({
        countries: [
          {
            country: cc,
            revision: String(i + 1),
            full: true,
            ipv4Add: d.ipv4,
            ipv4Del: [],
            ipv6Add: d.ipv6,
            ipv6Del: [],
            fromRevision: "0",
          },
        ],
      });
      agent.push(performance.now() - t0);
      if (!a || a.elements !== d.ipv4.length + d.ipv6.length) throw new Error(`${cc}: agent load failed`);
      const t1 = performance.now();
      nft(["-f", "-"], rawOne);
      rawMs.push(performance.now() - t1);
    }
    const listed = nft(["list", "set", "inet", "palisade", geoip.geoSetName("ipv4", cc)]).toString();
    if (!listed.includes("elements")) throw new Error(`${cc}: the set is empty after the loads`);
    rows.push([
      cc,
      `${int(d.ipv4.length)} + ${int(d.ipv6.length)}`,
      ms(median(agent)),
      ms(median(rawMs)),
      ratio(median(agent), median(rawMs)),
    ]);
  }
  return rows;
}

async function ppsBench(lab: NetnsLab): Promise<string[][]> {
  const big = synthetic(GEO_RANGES, "ipv4", 7);
  const chain = (elements: string[]) => `table inet bench_geo {
  set geo_v4_XX { type ipv4_addr; flags interval,timeout; elements = { ${elements.join(", ")} } }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip saddr @geo_v4_XX drop
  }
}
`;
  const cases: { label: string; text: string | undefined; pps: number[] }[] = [
    { label: "no ruleset", text: undefined, pps: [] },
    { label: "ip saddr @geo, 1-element set", text: chain(["192.0.2.0-192.0.2.255"]), pps: [] },
    { label: `ip saddr @geo, ${int(GEO_RANGES)}-range set`, text: chain(big), pps: [] },
  ];
  const client = await lab.addNamespace();
  const router = await lab.addNamespace();
  const server = await lab.addNamespace();
  const ext = await lab.link(client, router, { a: "wan0", b: "ext0" });
  const lan = await lab.link(router, server, { a: "lan0", b: "eth0" });
  await lab.exec(client, ["ip", "addr", "add", `${CLIENT_IP}/24`, "dev", ext.a.ifname]);
  await lab.exec(router, ["ip", "addr", "add", `${ROUTER_EXT_IP}/24`, "dev", ext.b.ifname]);
  await lab.exec(client, ["ip", "route", "replace", "default", "via", ROUTER_EXT_IP, "src", CLIENT_IP]);
  await lab.exec(server, ["ip", "route", "replace", "default", "via", lan.a.ip4]);
  await lab.enableForwarding(router);
  await startIperfServer(lab, server, lan.b.ip4, (ROUNDS * cases.length * (SECONDS + 20) + 120) * 1000);
  const nft = nftIn(router);
  const p = step(`UDP 64-byte runs: ${ROUNDS} rounds x ${cases.length} cases x ${SECONDS} s`);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(r + k) % cases.length]!;
      p.update(`round ${r + 1}/${ROUNDS}: ${c.label}`);
      nft(["flush", "ruleset"]);
      if (c.text) nft(["-f", "-"], c.text);
      const got = await iperfUdp(lab, client, { server: lan.b.ip4, bind: CLIENT_IP, seconds: SECONDS, what: c.label });
      if (got.received < 1000)
        throw new Error(`${c.label}: ${int(got.received)} pps received: the ruleset blocks the traffic`);
      c.pps.push(got.received);
    }
  }
  p.done();
  const base = median(cases[0]!.pps);
  // Each round runs the three cases back to back: its own ratio to no ruleset follows the
  // shared box's load less than a ratio of medians taken over the whole run does.
  const paired = (c: (typeof cases)[number]) => c.pps.map((v, r) => v / cases[0]!.pps[r]!);
  const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
  return [
    ["case", "received pps (median)", "vs no ruleset", "per-round ratio: median", "min-max"],
    ...cases.map((c) => [
      c.label,
      int(median(c.pps)),
      ratio(median(c.pps), base),
      `${median(paired(c)).toFixed(2)}x`,
      spread(paired(c)),
    ]),
  ];
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error("bench/geoip.ts needs root (network namespaces, nft)");
    process.exit(2);
  }
  const lab = createLab();
  try {
    if (process.env.BENCH_GEOIP_SKIP_LOAD !== "1") {
      // machine() reads the load average now: before the runs, as its text says.
      const host = machine();
      const load = await loadBench(lab);
      console.log(`geoip load (${host}), ${RUNS} runs per country, medians`);
      console.log(table(load));
    }
    if (process.env.BENCH_GEOIP_SKIP_PPS !== "1") {
      const host = machine();
      const pps = await ppsBench(lab);
      console.log(
        `geoip packet cost (${host}): 64-byte UDP through a router namespace, ${ROUNDS} rotated rounds of ${SECONDS} s`,
      );
      console.log(table(pps));
    }
    console.log(NOISE_NOTE);
  } finally {
    await lab.cleanup();
  }
}

await main();
