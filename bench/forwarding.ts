// forwarding: 64-byte UDP packets per second forwarded by a router namespace, per ruleset
// (issue 11, "the packet path"):
//
//   client --(wan0 | ext0)-- router --(lan0 | eth0)-- server
//   203.0.113.2              forwards, ruleset under test          10.200.2.2
//
// The client is on the router's external side with a non-bogon address, so every packet
// passes every anti-spoofing check (the worst case for the presets); the server is on the LAN.
// Cases, loaded into the router before each run (`nft flush ruleset` first, which also removes
// iptables-nft's tables), order rotated per round:
//   empty        no ruleset at all (conntrack is not even loaded)
//   conntrack    conntrack-only: one inet filter forward chain, policy accept, with
//                `ct state established,related accept` and `ct state invalid drop`
//   palisade     bench/fixtures/hardening-router.yaml compiled by validatePolicy + compileNft
//   iptables-nft the same policy rendered by renderIptables (IPv4 text) and loaded with
//                iptables-nft-restore --noflush: what a user switching from iptables runs
//   BENCH_EXTRA  "name=file.nft,..." extra nft texts (experiments; see bench/README.md)
// Received pps = (packets sent - packets the server counted lost) / seconds, from iperf3's
// JSON (-u -l 64 -b 0 -t S -J). Medians per case; ratios to conntrack-only and iptables-nft.
// Figures only, no pass/fail.
//
// Usage: npm run bench -- bench/forwarding.ts  (BENCH_ROUNDS=7, BENCH_SECONDS=3)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { renderIptables, validatePolicy } from "../src/engine/index.ts";
import { createLab, type NetnsLab } from "../test/support/netns.ts";
import { compileTimed } from "./lib/compile.ts";
import { machine, median, min, max, int, percent, table, NOISE_NOTE, ms } from "./lib/stats.ts";
import { note, step } from "./lib/progress.ts";
import { iperfUdp, startIperfServer } from "./lib/iperf.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CLIENT_IP = "203.0.113.2";
const ROUTER_EXT_IP = "203.0.113.1";
const FIXTURE = join(import.meta.dirname, "fixtures", "hardening-router.yaml");

const CONNTRACK_ONLY = `table inet bench_conntrack {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ct state invalid drop
  }
}
`;

// With veth the router's and the server's receive path run as softirq in the sending
// task's context (veth_xmit -> netif_rx -> softirq on local_bh_enable), and this kernel's
// tick accounting charges that time to the sender, so packets per CPU-second of the sender
// is the path's cost with the CPU share the shared machine happened to give us factored out.
const CPU_NOTE =
  "sent/CPU-s: packets sent / (seconds x the sending iperf3's CPU share from its JSON); the forwarding softirq runs in the sender's context, so this is the per-packet cost of the whole path, less sensitive to other load than received pps (softirq work deferred to ksoftirqd is not in it).";

interface Case {
  key: string;
  label: string;
  load: (lab: NetnsLab, router: string) => Promise<void>;
  pps: number[];
  /** Packets sent per CPU-second of the sending iperf3 (see cpuNote). */
  perCpu: number[];
}

const nftLoad = (text: string, expect: RegExp) => async (lab: NetnsLab, router: string) => {
  await lab.nft(router, ["-f", "-"], text, { timeoutMs: 60_000 });
  const listed = (await lab.nft(router, ["list", "ruleset"], undefined, { timeoutMs: 30_000 })).stdout;
  if (!expect.test(listed)) throw new Error(`ruleset in ${router} lacks ${expect}`);
};

async function main(): Promise<void> {
  const header = machine();
  const started = performance.now();
  const doc = parse(readFileSync(FIXTURE, "utf8"));
  const compiled = compileTimed(doc);
  const v = validatePolicy(doc, { target: "iptables" });
  if (!v.ok || !v.policy)
    throw new Error(`validatePolicy (iptables) refused the fixture: ${v.errors.map((e) => e.message).join("; ")}`);
  const ipt = renderIptables(v.policy);
  if (!ipt.ok) throw new Error(`renderIptables refused the fixture: ${ipt.errors.map((e) => e.message).join("; ")}`);
  if (ipt.ipsets.trim() !== "") throw new Error("the iptables render needs ipsets; the bench loads iptables text only");

  const cases: Case[] = [
    { key: "empty", label: "empty ruleset", load: async () => {}, pps: [], perCpu: [] },
    {
      key: "conntrack",
      label: "conntrack-only",
      load: nftLoad(CONNTRACK_ONLY, /ct state established,related accept/),
      pps: [],
      perCpu: [],
    },
    {
      key: "palisade",
      label: "hardening, Palisade nft",
      load: nftLoad(compiled.text, /protect_prerouting/),
      pps: [],
      perCpu: [],
    },
    {
      key: "iptables",
      label: "hardening, iptables-nft",
      load: async (lab, router) => {
        const ver = (await lab.exec(router, ["iptables-nft", "-V"])).stdout;
        if (!ver.includes("nf_tables")) throw new Error(`iptables-nft -V does not say nf_tables: ${ver.trim()}`);
        await lab.exec(router, ["iptables-nft-restore", "--noflush"], { input: ipt.text, timeoutMs: 60_000 });
        const saved = (await lab.exec(router, ["iptables-nft-save"])).stdout;
        if (!saved.includes("rpfilter")) throw new Error("iptables-nft-save shows no rpfilter rule after the restore");
      },
      pps: [],
      perCpu: [],
    },
  ];
  for (const spec of (process.env.BENCH_EXTRA ?? "").split(",").filter(Boolean)) {
    const [name, file] = spec.split("=");
    if (!name || !file) throw new Error(`BENCH_EXTRA entry "${spec}" is not name=file.nft`);
    cases.push({ key: name, label: name, load: nftLoad(readFileSync(file, "utf8"), /table/), pps: [], perCpu: [] });
  }

  const lab = createLab();
  try {
    const client = await lab.addNamespace();
    const router = await lab.addNamespace();
    const server = await lab.addNamespace();
    const ext = await lab.link(client, router, { a: "wan0", b: "ext0" });
    const lan = await lab.link(router, server, { a: "lan0", b: "eth0" });
    if (lan.b.ip4 !== "10.200.2.2") throw new Error(`server address ${lan.b.ip4}, the fixture expects 10.200.2.2`);
    await lab.exec(client, ["ip", "addr", "add", `${CLIENT_IP}/24`, "dev", ext.a.ifname]);
    await lab.exec(router, ["ip", "addr", "add", `${ROUTER_EXT_IP}/24`, "dev", ext.b.ifname]);
    await lab.exec(client, ["ip", "route", "replace", "default", "via", ROUTER_EXT_IP, "src", CLIENT_IP]);
    await lab.exec(server, ["ip", "route", "replace", "default", "via", lan.a.ip4]);
    await lab.enableForwarding(router);
    note(`client ${client} (${CLIENT_IP}), router ${router} (ext0, lan0), server ${server} (${lan.b.ip4})`);

    const lifetime = (ROUNDS * cases.length * (SECONDS + 20) + 120) * 1000;
    await startIperfServer(lab, server, lan.b.ip4, lifetime);

    const p = step(`UDP 64-byte runs: ${ROUNDS} rounds x ${cases.length} cases x ${SECONDS} s`);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(r + k) % cases.length]!;
        p.update(`round ${r + 1}/${ROUNDS}: ${c.label}`);
        await lab.nft(router, ["flush", "ruleset"]);
        await c.load(lab, router);
        const got = await iperfUdp(lab, client, {
          server: lan.b.ip4,
          bind: CLIENT_IP,
          seconds: SECONDS,
          what: `through ${c.label}`,
        });
        if (got.received < 1000)
          throw new Error(`${c.label}: ${int(got.received)} pps received: the ruleset blocks the bench traffic`);
        c.pps.push(got.received);
        c.perCpu.push(got.perCpu);
      }
    }
    p.done();
  } finally {
    await lab.cleanup();
  }

  const ct = median(cases.find((c) => c.key === "conntrack")!.pps);
  const iptm = median(cases.find((c) => c.key === "iptables")!.pps);
  const out: string[] = [];
  out.push(
    `forwarding: 64-byte UDP through a router namespace, iperf3 -u -l 64 -b 0 -t ${SECONDS}, received packets/s at the server (medians of ${ROUNDS} rotated rounds)`,
  );
  out.push(header);
  out.push(NOISE_NOTE);
  out.push(
    `Palisade compile of the fixture: ${ms(compiled.totalMs)}; ${compiled.text.split("\n").filter((l) => l.startsWith("add rule")).length} nft rules.`,
  );
  out.push("");
  const ctCpu = median(cases.find((c) => c.key === "conntrack")!.perCpu);
  const iptCpu = median(cases.find((c) => c.key === "iptables")!.perCpu);
  const rows: string[][] = [
    [
      "case",
      "runs",
      "received pps",
      "min",
      "max",
      "vs conntrack-only",
      "vs iptables-nft",
      "sent/CPU-s",
      "vs conntrack-only",
      "vs iptables-nft",
    ],
  ];
  for (const c of cases) {
    const m = median(c.pps);
    const k = median(c.perCpu);
    rows.push([
      c.label,
      String(c.pps.length),
      int(m),
      int(min(c.pps)),
      int(max(c.pps)),
      percent(m, ct),
      percent(m, iptm),
      int(k),
      percent(k, ctCpu),
      percent(k, iptCpu),
    ]);
  }
  out.push(table(rows));
  out.push(CPU_NOTE);
  out.push(`Total bench time ${ms(performance.now() - started)}.`);
  process.stdout.write(out.join("\n") + "\n");
}

main().catch((e) => {
  process.stderr.write(`forwarding failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
