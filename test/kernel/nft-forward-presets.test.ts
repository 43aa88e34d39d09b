// The forward presets (bogusPackets, portScanTrap) let an ESTABLISHED packet skip the rules
// that cannot match it (src/engine/expand/established-skip.ts). The edges this proves, on
// packets carrying an established connection's 5-tuple through a router:
//   - SYN+FIN is still dropped (conntrack files it INVALID, so it is never ESTABLISHED);
//   - an established connection to a trap port (opened before the trap was loaded) is still
//     trapped: its next packet bans the source and is dropped;
//   - other established traffic skips the rest and is forwarded.
// The router's conntrack runs with tcp_be_liberal=1 (its own namespace only), so hping3's
// ACKs, whose sequence numbers are not the connection's, still count as ESTABLISHED.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Background } from "../support/netns.ts";
import { applyPolicy, ruleCounter, sleep } from "../support/nft-lab.ts";

const lab = createLab();
let client = "";
let router = "";
let server = "";
let serverIp = "";
let clientIp = "";
const procs: Background[] = [];
before(async () => {
  const r = await lab.routed();
  ({ client, router, server } = r);
  serverIp = r.right.b.ip4;
  clientIp = r.left.a.ip4;
  // The sysctl exists once nf_conntrack is loaded: a throwaway ct rule loads it.
  await lab.nft(
    router,
    ["-f", "-"],
    "table inet ctload {\n  chain c {\n    type filter hook prerouting priority 0; ct state new accept\n  }\n}\ndelete table inet ctload\n",
  );
  await lab.exec(router, ["sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_be_liberal=1"]);
  const liberal = await lab.exec(router, ["sysctl", "-n", "net.netfilter.nf_conntrack_tcp_be_liberal"]);
  assert.equal(liberal.stdout.trim(), "1", "the router's conntrack is liberal, as the test's ACKs need");
});
after(async () => {
  for (const p of procs) await p.stop();
  await lab.cleanup();
});

const forward = {
  hook: "forward",
  policy: "accept",
  rules: [
    { comment: "to 139", match: { protocol: "tcp", dport: 139 }, action: "accept", counter: true },
    { comment: "to 8080", match: { protocol: "tcp", dport: 8080 }, action: "accept", counter: true },
  ],
};
const count = async (c: string) => (await ruleCounter(lab, router, "forward", c)).packets;

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (await check()) return;
    await sleep(100);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A TCP connection client:sport -> server:port held open (idle) for at most 60 s; nofork: the sleep is the pid stop() kills. */
async function hold(port: number, sport: number): Promise<void> {
  procs.push(
    lab.background(server, ["socat", `TCP-LISTEN:${port},reuseaddr`, "EXEC:sleep 60,nofork"], {
      maxLifetimeMs: 60_000,
    }),
  );
  await until(`a listener on ${port}`, async () =>
    (await lab.exec(server, ["ss", "-Hltn", `sport = :${port}`])).stdout.includes(`:${port}`),
  );
  procs.push(
    lab.background(client, ["socat", `TCP:${serverIp}:${port},sourceport=${sport}`, "EXEC:sleep 60,nofork"], {
      maxLifetimeMs: 60_000,
    }),
  );
  await until(`the connection from ${sport} to ${port} in conntrack`, async () => {
    const ct = await lab.exec(router, ["conntrack", "-L", "-p", "tcp", "--orig-port-src", String(sport)], {
      allowFailure: true,
    });
    return /ESTABLISHED/.test(ct.stdout);
  });
}

const hping = (sport: number, port: number, flags: string[], n: number) =>
  lab.exec(
    client,
    [
      "hping3",
      "-q",
      "-c",
      String(n),
      "-i",
      "u10000",
      "-s",
      String(sport),
      "-k",
      "-p",
      String(port),
      ...flags,
      serverIp,
    ],
    { allowFailure: true, timeoutMs: 15_000 },
  );

test("established connections: SYN+FIN dropped, a trap port still trapped, other traffic forwarded", async () => {
  // Conntrack on, no trap yet: the connection to 139 opens.
  await applyPolicy(lab, router, { protections: { bogusPackets: {} }, chains: { forward } } as never);
  await hold(139, 40139);
  await hold(8080, 40080);

  await applyPolicy(lab, router, {
    protections: { bogusPackets: {}, portScanTrap: { ports: [139], banSeconds: 60 } },
    chains: { forward },
  } as never);
  const rules = (await lab.nft(router, ["list", "chain", "inet", "palisade", "protect_forward"])).stdout;
  assert.match(rules, /ct state established return/, "the skip rules are in place");

  // Established traffic to another port skips the presets and is forwarded.
  await hping(40080, 8080, ["-A"], 3);
  assert.equal(await count("to 8080"), 3);
  // SYN+FIN with the same 5-tuple: INVALID for conntrack, dropped by bogusPackets.
  await hping(40080, 8080, ["-S", "-F"], 3);
  assert.equal(await count("to 8080"), 3);
  // An ACK of the established connection to the trap port: trapped, the source banned.
  await hping(40139, 139, ["-A"], 2);
  assert.equal(await count("to 139"), 0);
  const banned = (await lab.nft(router, ["list", "set", "inet", "palisade", "recent_protect_portscan_v4"])).stdout;
  assert.ok(banned.includes(clientIp), banned);
  // Banned: the source's established traffic to 8080 is now dropped too (the ban sees every packet).
  await hping(40080, 8080, ["-A"], 2);
  assert.equal(await count("to 8080"), 3);
});

// The fast path (src/engine/compile/nft/forward-fast-path.ts): when the forward chain's rule
// after the presets' jump accepts ESTABLISHED packets, the skip and the ban check run as one
// accept rule before the jump. Counted at the server (the router's accepting rule must stay
// without a counter, or there is no fast path): a source banned mid-connection is still cut off.
test("fast path: established traffic accepted before the jump; SYN+FIN dropped; a ban still cuts the source off", async () => {
  const replies = {
    hook: "forward",
    policy: "drop",
    rules: [
      { comment: "replies", match: { ctState: ["established", "related"] }, action: "accept" },
      { comment: "published", match: { protocol: "tcp", dport: [445, 8081] }, action: "accept" },
    ],
  };
  await applyPolicy(lab, router, { protections: { bogusPackets: {} }, chains: { forward: replies } } as never);
  await hold(445, 40445);
  await hold(8081, 40081);
  await lab.nft(
    server,
    ["-f", "-"],
    'table inet palisade {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    tcp dport 8081 counter comment "8081"\n    tcp dport 445 counter comment "445"\n  }\n}\n',
  );
  const atServer = async (c: string) => (await ruleCounter(lab, server, "input", c)).packets;

  await applyPolicy(lab, router, {
    protections: { bogusPackets: {}, portScanTrap: { ports: [445], banSeconds: 60 } },
    chains: { forward: replies },
  } as never);
  const rules = (await lab.nft(router, ["list", "chain", "inet", "palisade", "forward"])).stdout;
  assert.match(
    rules,
    /ct state established ip saddr != @recent_protect_portscan_v4 accept/,
    "the fast path is in place",
  );

  await hping(40081, 8081, ["-A"], 3);
  assert.equal(await atServer("8081"), 3);
  await hping(40081, 8081, ["-S", "-F"], 3);
  assert.equal(await atServer("8081"), 3);
  await hping(40445, 445, ["-A"], 2);
  assert.equal(await atServer("445"), 0);
  const banned = (await lab.nft(router, ["list", "set", "inet", "palisade", "recent_protect_portscan_v4"])).stdout;
  assert.ok(banned.includes(clientIp), banned);
  await hping(40081, 8081, ["-A"], 2);
  assert.equal(await atServer("8081"), 3);
});
