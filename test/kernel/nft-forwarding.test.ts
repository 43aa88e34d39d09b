// Kernel port forwarding (seed: kernel-port-forwarding) on a real kernel: client -- router
// -- server, the policy in the router. PORTFW with preferences 3:1 splits 40 connections
// 30:10 (numgen inc is PORTFW's own scheduler); mfw sends each mark to its backend and
// fails over when `active` changes; AUTOFW forwards a port range to the hidden host.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Background, type Link } from "../support/netns.ts";
import { applyPolicy, sleep } from "../support/nft-lab.ts";

const lab = createLab();
let client = "";
let router = "";
let server = "";
let left: Link;
let right: Link;
const BACKEND_B = "10.200.2.3";
const listeners: Background[] = [];

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 30; i++) {
    const r = await lab.exec(server, ["ss", "-ltnH", `sport = :${port}`]);
    if (r.stdout.trim().split("\n").length >= 2) return;
    await sleep(100);
  }
  throw new Error(`backends do not listen on ${port}`);
}

before(async () => {
  ({ client, router, server, left, right } = await lab.routed());
  await lab.exec(server, ["ip", "addr", "add", `${BACKEND_B}/24`, "dev", right.b.ifname]);
  await lab.exec(client, ["ip", "addr", "add", "10.200.1.5/24", "dev", left.a.ifname]);
  // Each backend answers with its own name, then closes.
  for (const [addr, name] of [
    [right.b.ip4, "A"],
    [BACKEND_B, "B"],
  ] as const) {
    listeners.push(
      lab.background(server, ["socat", `TCP-LISTEN:8080,bind=${addr},fork,reuseaddr`, `SYSTEM:echo ${name}`], {
        maxLifetimeMs: 120_000,
      }),
    );
  }
  await waitListening(8080);
});
after(async () => {
  for (const l of listeners) await l.stop();
  await lab.cleanup();
});

/** One TCP connection from the client (optionally from a given source); the backend's name or "". */
async function whoAnswers(port: number, source?: string): Promise<string> {
  const argv = ["nc", "-n", "-w", "2", ...(source ? ["-s", source] : []), left.b.ip4, String(port)];
  const r = await lab.exec(client, argv, { allowFailure: true, timeoutMs: 5000 });
  return r.stdout.trim();
}

const forwardChain = {
  forward: {
    hook: "forward" as const,
    policy: "drop" as const,
    rules: [{ match: { ctState: ["established" as const, "related" as const] }, action: "accept" as const }],
  },
};

test("PORTFW: preferences 3:1 split 40 connections 30:10", async () => {
  await applyPolicy(lab, router, {
    chains: forwardChain,
    forwarding: {
      portForwards: [
        {
          protocol: "tcp",
          address: left.b.ip4,
          port: 80,
          backends: [
            { address: right.b.ip4, port: 8080, weight: 3 },
            { address: BACKEND_B, port: 8080, weight: 1 },
          ],
        },
      ],
    },
  });
  const seen: Record<string, number> = {};
  for (let i = 0; i < 40; i++) {
    const who = await whoAnswers(80);
    seen[who] = (seen[who] ?? 0) + 1;
  }
  assert.equal((seen.A ?? 0) + (seen.B ?? 0), 40, JSON.stringify(seen));
  assert.ok(Math.abs((seen.A ?? 0) - 30) <= 2, JSON.stringify(seen));
});

test("PORTFW: weight 1 each is round robin", async () => {
  await applyPolicy(lab, router, {
    chains: forwardChain,
    forwarding: {
      portForwards: [
        {
          protocol: "tcp",
          port: 80,
          backends: [
            { address: right.b.ip4, port: 8080 },
            { address: BACKEND_B, port: 8080 },
          ],
        },
      ],
    },
  });
  const order: string[] = [];
  for (let i = 0; i < 6; i++) order.push(await whoAnswers(80));
  assert.ok(order.join("") === "ABABAB" || order.join("") === "BABABA", order.join(""));
});

test("mfw: each mark goes to its backend; changing `active` fails over", async () => {
  const policy = (active: number) => ({
    chains: forwardChain,
    forwarding: {
      markForwards: [
        {
          mark: 1,
          match: { saddr: "10.200.1.5", daddr: left.b.ip4, protocol: "tcp" as const, dport: 81 },
          backends: [
            { address: right.b.ip4, port: 8080 },
            { address: BACKEND_B, port: 8080 },
          ],
          active,
          comment: "friend",
        },
        {
          mark: 3,
          match: { saddr: { not: "10.200.1.5" }, daddr: left.b.ip4, protocol: "tcp" as const, dport: 81 },
          backends: [{ address: BACKEND_B, port: 8080 }],
          comment: "neutral",
        },
      ],
    },
  });
  await applyPolicy(lab, router, policy(0));
  assert.equal(await whoAnswers(81, "10.200.1.5"), "A");
  assert.equal(await whoAnswers(81, left.a.ip4), "B");
  // mfw -S: the primary is down, the agent moves `active` to the next backend.
  await applyPolicy(lab, router, policy(1));
  assert.equal(await whoAnswers(81, "10.200.1.5"), "B");
  assert.equal(await whoAnswers(81, left.a.ip4), "B");
});

test("AUTOFW: a port range goes to the hidden host, ports kept; masquerade hides the client", async () => {
  await applyPolicy(lab, router, {
    chains: forwardChain,
    forwarding: { rangeForwards: [{ protocol: "tcp", ports: "8000-8100", to: right.b.ip4, masquerade: true }] },
  });
  assert.equal(await whoAnswers(8080), "A");
  assert.equal(await whoAnswers(8081), "", "nothing listens on 8081 at the hidden host");
  const ct = await lab.exec(router, ["conntrack", "-L", "-p", "tcp", "--orig-port-dst", "8080"], {
    allowFailure: true,
  });
  assert.match(
    ct.stdout,
    new RegExp(`dst=${right.a.ip4.replace(/\./g, "\\.")}`),
    "replies come back to the router's address (masquerade)",
  );
});
