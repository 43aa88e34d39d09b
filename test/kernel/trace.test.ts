// `palisade trace` on a real kernel: the seed scenarios traced through the presets policy
// and a PORTFW forward, each verdict and the rule that decided it read from the kernel's
// own nftrace events (driver.trace builds and deletes its own namespaces).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { parse } from "yaml";
import { driver, parsePacketSpec, renderNft, validatePolicy } from "../../src/engine/index.ts";

function rendering(doc: unknown): string {
  const checked = validatePolicy(doc, { target: "nftables" });
  assert.ok(checked.ok && checked.policy, JSON.stringify(checked.errors));
  const r = renderNft(checked.policy);
  assert.ok(r.ok);
  return r.text;
}

const presets = rendering(parse(readFileSync(new URL("../golden/presets.policy.yaml", import.meta.url), "utf8")));
const trace = (packets: string[], text = presets, count?: number) =>
  driver.trace({ rulesetText: text, packets: packets.map(parsePacketSpec), ...(count ? { count } : {}) });
const last = <T>(a: T[]): T => a[a.length - 1]!;

test("SYN+FIN is dropped, by the bogus-packets rule; a plain SYN to the same port is accepted", async () => {
  const bad = (await trace(["tcp 203.0.113.5:40000 -> 198.51.100.1:443 flags S,F iif eth0"])).runs[0]![0]!;
  assert.equal(bad.verdict, "drop");
  assert.match(last(bad.steps).rule, /bogusPackets/);
  const good = (await trace(["tcp 203.0.113.5:40000 -> 198.51.100.1:443 flags S iif eth0"])).runs[0]![0]!;
  assert.equal(good.verdict, "accept");
  assert.ok(
    good.steps.some((s) => s.chain === "input" && /tcp dport 443 accept/.test(s.rule)),
    JSON.stringify(good.steps),
  );
});

test("a spoofed RFC 1918 source on the WAN interface is dropped by anti-spoofing; the same source on another interface is not", async () => {
  const spoofed = (await trace(["tcp 10.1.2.3:40000 -> 198.51.100.1:443 flags S iif eth0"])).runs[0]![0]!;
  assert.equal(spoofed.verdict, "drop");
  assert.equal(last(spoofed.steps).chain, "protect_prerouting");
  assert.match(last(spoofed.steps).rule, /antiSpoofing/);
  const inside = (await trace(["tcp 10.1.2.3:40000 -> 198.51.100.1:443 flags S iif lan0"])).runs[0]![0]!;
  assert.equal(inside.verdict, "accept");
});

test("the port-139 trap logs and drops the probe, then the source is banned: its next SYN to an open port is dropped", async () => {
  const [probe, after] = (
    await trace([
      "tcp 203.0.113.5:40000 -> 198.51.100.1:139 flags S iif eth0",
      "tcp 203.0.113.5:40001 -> 198.51.100.1:443 flags S iif eth0",
    ])
  ).runs[0]!;
  assert.equal(probe!.verdict, "drop");
  assert.ok(
    probe!.steps.some(
      (s) => /update @recent_protect_portscan_v4/.test(s.rule) && /log prefix "Portscan:"/.test(s.rule),
    ),
    JSON.stringify(probe!.steps),
  );
  assert.equal(after!.verdict, "drop");
  assert.match(last(after!.steps).rule, /ip saddr @recent_protect_portscan_v4 drop/);
});

test("an ICMP timestamp request is dropped by its own rule", async () => {
  const t = (await trace(["icmp 203.0.113.5 -> 198.51.100.1 type timestamp-request iif eth0"])).runs[0]![0]!;
  assert.equal(t.verdict, "drop");
  assert.match(last(t.steps).rule, /icmp type \{ timestamp-request, address-mask-request \} drop/);
});

test("a tcp reset rule shows as reject", async () => {
  const text = rendering({
    chains: {
      input: {
        hook: "input",
        policy: "accept",
        rules: [{ match: { protocol: "tcp", dport: 22 }, action: { type: "reject", with: "tcp-reset" } }],
      },
    },
  });
  const t = (await trace(["tcp 203.0.113.5:40000 -> 198.51.100.1:22 flags S iif wan0"], text)).runs[0]![0]!;
  assert.equal(t.verdict, "reject");
});

test("PORTFW weights 3:1 show as a 3:1 distribution over repeated traces (round-robin: exactly 30 and 10 of 40)", async () => {
  const text = rendering({
    chains: {
      forward: {
        hook: "forward",
        policy: "drop",
        rules: [{ match: { ctState: ["established", "related"] }, action: "accept" }],
      },
    },
    forwarding: {
      portForwards: [
        {
          protocol: "tcp",
          address: "198.51.100.1",
          port: 80,
          backends: [
            { address: "192.168.16.27", weight: 3 },
            { address: "192.168.16.28", weight: 1 },
          ],
        },
      ],
    },
  });
  const r = await trace(["tcp 203.0.113.5:40000 -> 198.51.100.1:80 flags S iif wan0"], text, 40);
  const counts = new Map<string, number>();
  for (const run of r.runs) {
    assert.equal(run[0]!.verdict, "accept");
    counts.set(run[0]!.finalDestination!, (counts.get(run[0]!.finalDestination!) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(counts), { "192.168.16.27:80": 30, "192.168.16.28:80": 10 });
});

// The output hook: packets the firewall sends itself (from local) meet output and postrouting,
// never prerouting or input; the output chain decides them and postrouting's SNAT shows.
const egress = () =>
  rendering({
    chains: {
      output: {
        hook: "output",
        policy: "accept",
        rules: [
          { comment: "no direct smtp", match: { protocol: "tcp", dport: 25, oif: "wan0" }, action: "drop" },
          {
            comment: "no dns but ours",
            match: { protocol: "udp", dport: 53, daddr: { not: "192.0.2.53" } },
            action: { type: "reject", with: "icmp-port-unreachable" },
          },
        ],
      },
      input: {
        hook: "input",
        policy: "drop",
        rules: [{ match: { protocol: "tcp", dport: 22 }, action: "accept" }],
      },
      forward: {
        hook: "forward",
        policy: "accept",
        rules: [{ match: { protocol: "tcp", dport: 23, oif: "lan0" }, action: "drop" }],
      },
      nat_out: {
        table: "nat",
        hook: "postrouting",
        rules: [{ match: { oif: "wan0" }, action: { type: "snat", to: { address: "198.51.100.99" } } }],
      },
    },
  });

test("a packet the firewall sends (from local) is decided by the output chain and never meets input", async () => {
  const text = egress();
  const smtp = (await trace(["tcp 198.51.100.1:40000 -> 203.0.113.9:25 from local oif wan0"], text)).runs[0]![0]!;
  assert.equal(smtp.verdict, "drop");
  assert.equal(last(smtp.steps).chain, "output");
  assert.match(last(smtp.steps).rule, /tcp dport 25 .*drop/);
  assert.ok(!smtp.steps.some((s) => s.chain === "input"), JSON.stringify(smtp.steps));
  const dns = (await trace(["udp 198.51.100.1:5000 -> 203.0.113.9:53 from local"], text)).runs[0]![0]!;
  assert.equal(dns.verdict, "reject");
  const web = (await trace(["tcp 198.51.100.1:40000 -> 203.0.113.9:443 from local oif wan0"], text)).runs[0]![0]!;
  assert.equal(web.verdict, "accept");
  // Accepted by output, then postrouting's SNAT: both chains are on the packet's path, input is not.
  assert.ok(
    web.steps.some((s) => s.chain === "nat_out" && /snat ip to 198\.51\.100\.99/.test(s.rule)),
    JSON.stringify(web.steps),
  );
  assert.ok(!web.steps.some((s) => s.chain === "input"), JSON.stringify(web.steps));
});

test("wire and local packets in one sequence keep their order and each meets its own hooks", async () => {
  const text = egress();
  const [inbound, outbound, ssh] = (
    await trace(
      [
        "tcp 203.0.113.5:40000 -> 198.51.100.1:443 flags S iif wan0",
        "tcp 198.51.100.1:40001 -> 203.0.113.9:25 from local oif wan0",
        "tcp 203.0.113.5:40002 -> 198.51.100.1:22 flags S iif wan0",
      ],
      text,
    )
  ).runs[0]!;
  assert.equal(inbound!.verdict, "drop");
  assert.equal(last(inbound!.steps).chain, "input");
  assert.equal(outbound!.verdict, "drop");
  assert.equal(last(outbound!.steps).chain, "output");
  assert.equal(ssh!.verdict, "accept");
  assert.ok(
    ssh!.steps.some((s) => s.chain === "input" && /tcp dport 22 accept/.test(s.rule)),
    JSON.stringify(ssh),
  );
});

test("a forwarded packet routed out of a named oif meets forward with that oif", async () => {
  const [telnet, web] = (
    await trace(
      [
        "tcp 203.0.113.5:40000 -> 10.9.9.9:23 iif wan0 oif lan0",
        "tcp 203.0.113.5:40001 -> 10.9.9.9:80 iif wan0 oif lan0",
      ],
      egress(),
    )
  ).runs[0]!;
  assert.equal(telnet!.verdict, "drop");
  assert.equal(last(telnet!.steps).chain, "forward");
  assert.equal(web!.verdict, "accept");
  assert.ok(!web!.steps.some((s) => /snat/.test(s.rule)), `SNAT is for wan0 only: ${JSON.stringify(web!.steps)}`);
});

test("an IPv6 packet from local takes the output path too", async () => {
  const text = rendering({
    chains: {
      output: {
        hook: "output",
        policy: "accept",
        rules: [{ match: { protocol: "tcp", dport: 25 }, action: "drop" }],
      },
    },
  });
  const t = (await trace(["tcp [2001:db8::1]:40000 -> [2001:db8:9::9]:25 from local"], text)).runs[0]![0]!;
  assert.equal(t.verdict, "drop");
  assert.equal(last(t.steps).chain, "output");
});

test("namespaces are deleted after a trace", async () => {
  await trace(["udp 203.0.113.5:5000 -> 198.51.100.1:53 iif wan0"]);
  const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout;
  assert.ok(!list.includes(`palisade-trace-${process.pid}-`), list);
});

const ROOT = new URL("../../", import.meta.url).pathname;
const cli = (args: string[], pre: string[] = []) =>
  spawnSync(
    pre[0] ?? process.execPath,
    [
      ...(pre.length ? [...pre.slice(1), process.execPath] : []),
      "--import",
      "tsx",
      "src/cli/main.ts",
      "trace",
      ...args,
    ],
    { cwd: ROOT, encoding: "utf8", timeout: 60_000 },
  );

test("the CLI: table output ends with the verdict line, -o json gives {verdict, rules}", () => {
  const args = [
    "test/golden/presets.policy.yaml",
    "--packet",
    "icmp 203.0.113.5 -> 198.51.100.1 type timestamp-request iif eth0",
  ];
  const table = cli(args);
  assert.equal(table.status, 0, table.stderr);
  assert.equal(table.stdout.trimEnd().split("\n").pop(), "verdict: drop");
  const json = cli([...args, "-o", "json"]);
  assert.equal(json.status, 0, json.stderr);
  const body = JSON.parse(json.stdout) as { verdict: string; rules: Array<{ chain: string; rule: string }> };
  assert.equal(body.verdict, "drop");
  assert.ok(
    body.rules.some((r) => r.chain === "protect_input" && /timestamp-request/.test(r.rule)),
    json.stdout,
  );
});

test("without CAP_NET_ADMIN the CLI says so and creates nothing", () => {
  const r = cli(
    ["test/golden/presets.policy.yaml", "--packet", "tcp 203.0.113.5:40000 -> 198.51.100.1:22 iif eth0"],
    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"],
  );
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /trace needs CAP_NET_ADMIN \(run as root or with the capability\) to create a throwaway network namespace/,
  );
  assert.equal(r.stdout, "");
});

test("a bad packet spec is refused before any namespace is made, naming the token", () => {
  const r = cli(["test/golden/presets.policy.yaml", "--packet", "tcp 203.0.113.5 -> 198.51.100.1:22"]);
  assert.equal(r.status, 4, "invalid input (docs/cli.md: exit statuses)");
  assert.match(r.stderr, /^error: invalid_packet: /);
  assert.match(r.stderr, /"203\.0\.113\.5": source needs a port/);
});
