// Core behaviour of the compiled ruleset on a real kernel: the failsafe keeps the agent's
// API connection open under default-drop policies (and only that connection when the
// endpoint is known); named sets of both families filter; a re-apply is a full replace
// that really empties dynamic sets. `agent` runs the policy, `api` plays the API server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Background, type Link } from "../support/netns.ts";
import { applyPolicy, sleep } from "../support/nft-lab.ts";

const lab = createLab();
let api = "";
let agent = "";
let link: Link;
const listeners: Background[] = [];
before(async () => {
  ({ client: api, server: agent, link } = await lab.pair());
  for (const port of [50051, 50052])
    listeners.push(
      lab.background(api, ["socat", `TCP-LISTEN:${port},fork,reuseaddr`, "EXEC:/bin/true"], { maxLifetimeMs: 120_000 }),
    );
  for (let i = 0; i < 30; i++) {
    if ((await lab.exec(api, ["ss", "-ltnH"])).stdout.trim().split("\n").length >= 2) break;
    await sleep(100);
  }
});
after(async () => {
  for (const l of listeners) await l.stop();
  await lab.cleanup();
});

const lockdown = (failsafe?: unknown) =>
  ({
    ...(failsafe ? { failsafe } : {}),
    chains: {
      input: { hook: "input", policy: "drop", rules: [{ comment: "drop all", action: "drop" }] },
      output: { hook: "output", policy: "drop", rules: [{ comment: "drop all", action: "drop" }] },
    },
  }) as never;

test("failsafe: a drop-everything policy still lets the agent reach the API", async () => {
  await applyPolicy(lab, agent, lockdown());
  assert.equal(await lab.tcpConnect(agent, link.a.ip4, 50051), true, "failsafe port open");
  assert.equal(await lab.tcpConnect(agent, link.a.ip4, 50052), false, "other ports closed");
  await applyPolicy(lab, agent, lockdown({ enabled: false, ports: [50051] }));
  assert.equal(await lab.tcpConnect(agent, link.a.ip4, 50051), false, "opted out: locked out");
});

test("failsafe with the agent's exact endpoint opens that address and port only", async () => {
  await applyPolicy(lab, agent, lockdown(), { failsafe: { apiAddresses: [link.a.ip4], apiPort: 50052 } });
  assert.equal(await lab.tcpConnect(agent, link.a.ip4, 50052), true);
  assert.equal(await lab.tcpConnect(agent, link.a.ip4, 50051), false);
  await lab.exec(api, ["ip", "addr", "add", "10.200.1.66/24", "dev", link.a.ifname]);
  assert.equal(
    await lab.tcpConnect(agent, "10.200.1.66", 50052),
    false,
    "another address of the same host is not the API",
  );
});

test("named sets filter both families; a re-apply empties dynamic sets (full replace)", async () => {
  const doc = {
    sets: {
      block4: { type: "ipv4_addr", interval: true, elements: ["10.200.1.0/28"] },
      block6: { type: "ipv6_addr", interval: true, elements: ["2001:db8:1::/120"] },
      seen: { type: "ipv4_addr", dynamic: true, timeoutSeconds: 600 },
    },
    chains: {
      input: {
        hook: "input",
        rules: [
          {
            comment: "remember",
            match: { protocol: "udp", dport: 9900, recent: { name: "r", mode: "set" } },
            action: "accept",
          },
          { comment: "blocked", match: { saddr: ["@block4", "@block6"] }, action: "drop" },
        ],
      },
    },
  } as never;
  await applyPolicy(lab, agent, doc);
  assert.equal(
    (await lab.ping(api, link.b.ip4, { count: 2, waitS: 0.3 })).received,
    0,
    "IPv4 source in the interval set",
  );
  assert.equal(
    (await lab.ping(api, link.b.ip6, { count: 2, waitS: 0.3 })).received,
    0,
    "IPv6 source in the interval set",
  );
  await lab.sendUdp(api, link.b.ip4, 9900, { count: 1 });
  const before = (await lab.nft(agent, ["list", "set", "inet", "palisade", "recent_r_v4"])).stdout;
  assert.ok(before.includes(link.a.ip4), before);
  await applyPolicy(lab, agent, doc);
  const afterReplace = (await lab.nft(agent, ["list", "set", "inet", "palisade", "recent_r_v4"])).stdout;
  assert.ok(!afterReplace.includes(link.a.ip4), afterReplace);
});
