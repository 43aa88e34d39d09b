// Protection presets, expanded by engine/expand and compiled by the nftables compiler, on a
// real kernel: port knocking opens then closes, the port-scan trap bans and the ban
// expires, anti-spoofing drops private sources on the external interface only, the ICMP
// and bogus-packet presets do what the seed says. The policy runs in `server`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { applyPolicy, ruleCounter, sleep } from "../support/nft-lab.ts";

const lab = createLab();
let client = "";
let server = "";
let link: Link;
const OPEN = 8022;
before(async () => {
  ({ client, server, link } = await lab.pair());
});
after(() => lab.cleanup());

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 30; i++) {
    const r = await lab.exec(server, ["ss", "-ltnH", `sport = :${port}`]);
    if (r.stdout.trim() !== "") return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${port}`);
}

/** One SYN to `port` (hping3): a knock. */
const knock = (port: number) => lab.tcpFlags(client, link.b.ip4, port, "S", { count: 1, intervalUs: 1000 });

test("port knocking: the right sequence opens the port for that source, then it closes", async () => {
  await applyPolicy(lab, server, {
    protections: {
      portKnock: [{ name: "ssh", knockPorts: [4002, 4001, 4004], port: OPEN, knockTimeoutSeconds: 5, openSeconds: 3 }],
    },
    chains: { input: { hook: "input", policy: "accept", rules: [] } },
  });
  const listener = lab.background(server, ["socat", `TCP-LISTEN:${OPEN},fork,reuseaddr`, "EXEC:/bin/true"], {
    maxLifetimeMs: 60_000,
  });
  try {
    await waitListening(OPEN);
    assert.equal(await lab.tcpConnect(client, link.b.ip4, OPEN), false, "closed before knocking");
    // Out of order: 4001 first resets, and 4004 after it does not open.
    await knock(4001);
    await knock(4004);
    assert.equal(await lab.tcpConnect(client, link.b.ip4, OPEN), false, "a wrong sequence does not open");
    await knock(4002);
    await knock(4001);
    await knock(4004);
    const t0 = Date.now();
    assert.equal(await lab.tcpConnect(client, link.b.ip4, OPEN), true, "open after the sequence");
    await sleep(Math.max(0, 3400 - (Date.now() - t0)));
    assert.equal(await lab.tcpConnect(client, link.b.ip4, OPEN), false, "closed again after openSeconds");
  } finally {
    await listener.stop();
  }
});

test("port-scan trap preset: probing 139 bans the source; the ban expires", async () => {
  await applyPolicy(lab, server, {
    protections: { portScanTrap: { ports: [139], banSeconds: 3, forward: false } },
    chains: { input: { hook: "input", policy: "accept", rules: [] } },
  });
  const listener = lab.background(server, ["socat", `TCP-LISTEN:${OPEN},fork,reuseaddr`, "EXEC:/bin/true"], {
    maxLifetimeMs: 60_000,
  });
  try {
    await waitListening(OPEN);
    assert.equal(await lab.tcpConnect(client, link.b.ip4, OPEN), true);
    const t0 = Date.now();
    await knock(139);
    assert.equal(await lab.tcpConnect(client, link.b.ip4, OPEN), false, "banned");
    await sleep(Math.max(0, 3400 - (Date.now() - t0)));
    assert.equal(await lab.tcpConnect(client, link.b.ip4, OPEN), true, "ban expired");
  } finally {
    await listener.stop();
  }
});

test("anti-spoofing preset: private sources dropped on the external interface, not on others", async () => {
  await applyPolicy(lab, server, { protections: { antiSpoofing: { interface: "ext0" } }, chains: {} });
  assert.equal((await lab.ping(client, link.b.ip4, { count: 2 })).received, 2, "another interface is not filtered");
  // The lab's link is 10.200.1.0/24: from the external interface's point of view a spoofed RFC 1918 source.
  await applyPolicy(lab, server, { protections: { antiSpoofing: { interface: link.b.ifname } }, chains: {} });
  assert.equal((await lab.ping(client, link.b.ip4, { count: 2, waitS: 0.3 })).received, 0);
  const chain = (await lab.nft(server, ["list", "chain", "inet", "palisade", "protect_prerouting"])).stdout;
  assert.match(chain, /iifname "veth1b" counter packets [1-9]|iifname "veth1b" drop/);
});

test("icmpFlood and bogusPackets presets: echo limited, smurf probes and SYN+FIN dropped", async () => {
  await applyPolicy(lab, server, {
    protections: { icmpFlood: { rate: "1/second", burst: 5 }, bogusPackets: {} },
    chains: {},
  });
  const t0 = Date.now();
  const ping = await lab.ping(client, link.b.ip4, { count: 20, waitS: 0.05, intervalS: 0.01 });
  const elapsed = (Date.now() - t0) / 1000;
  assert.ok(
    ping.received >= 5 && ping.received <= 5 + Math.ceil(elapsed) + 1,
    `received ${ping.received} in ${elapsed}s`,
  );
  assert.deepEqual(await lab.tcpFlags(client, link.b.ip4, 7777, "SF", { count: 3 }), { sent: 3, received: 0 });
  assert.equal((await lab.tcpFlags(client, link.b.ip4, 7777, "S", { count: 3 })).received, 3);
});

test("rstFlood and synFlood presets: RST over 2/second and per-source SYN floods are dropped", async () => {
  await applyPolicy(lab, server, {
    protections: { rstFlood: { rate: "2/second", burst: 2 }, synFlood: { rate: "10/second", burst: 10 } },
    chains: {
      input: {
        hook: "input",
        policy: "accept",
        rules: [
          {
            comment: "rst passed",
            match: { protocol: "tcp", tcpFlags: { mask: ["rst"], compare: ["rst"] } },
            action: "accept",
            counter: true,
          },
        ],
      },
    },
  });
  let t0 = Date.now();
  await lab.tcpFlags(client, link.b.ip4, 7777, "R", { count: 20, intervalUs: 10_000 });
  let elapsed = (Date.now() - t0) / 1000;
  const passed = (await ruleCounter(lab, server, "input", "rst passed")).packets;
  assert.ok(passed >= 2 && passed <= 2 + Math.ceil(elapsed * 2) + 1, `${passed} RSTs passed in ${elapsed}s`);
  t0 = Date.now();
  const flood = await lab.tcpFlags(client, link.b.ip4, 7777, "S", { count: 60, intervalUs: 2000 });
  elapsed = (Date.now() - t0) / 1000;
  assert.ok(
    flood.received >= 10 && flood.received <= 10 + Math.ceil(elapsed * 10) + 2,
    `answered ${flood.received} of 60 in ${elapsed}s`,
  );
});
