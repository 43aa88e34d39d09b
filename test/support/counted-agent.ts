// A real agent in a lab namespace with a ruleset that counts UDP packets (an nft counter and
// an accounting table), for kernel tests that change how the agent reaches the API (renewal,
// the move to mutual TLS) and prove the firewall and every count were left alone.
import assert from "node:assert/strict";
import type { AgentHandle } from "../../src/agent/main.ts";
import { readCounter, readSet } from "../../src/engine/driver/index.ts";
import { waitFor, type Fleet } from "./grpc-fleet.ts";

/** Counts UDP to `port` into the `udp_seen` counter and the `lan` accounting table of `net4`. */
export const countedUdpPolicy = (net4: string, port: number) => ({
  accounting: { lan: { prefix: net4 } },
  counters: { udp_seen: {} },
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { match: { protocol: "udp", dport: port }, action: { type: "account", table: "lan" } },
        { match: { protocol: "udp", dport: port }, action: { type: "counter", name: "udp_seen" } },
      ],
    },
  },
});

/** The rules, chains, sets and objects with their handles; counter values and set elements left out. */
export const rulesetStructure = (ruleset: string) =>
  ruleset
    .split("\n")
    .filter((l) => /# handle \d+/.test(l))
    .map((l) => l.replace(/packets \d+ bytes \d+/g, "").trim());

/** Counts the agent's kernel changes from now on: every apply, rollback and drift repair runs this hook first. */
export function countKernelChanges(a: AgentHandle): () => number {
  let n = 0;
  const hook = a.applier.hooks.beforeChange;
  a.applier.hooks.beforeChange = async () => {
    n++;
    await hook?.();
  };
  return () => n;
}

/** Deploys version 1 of `ruleset` to `host` and waits until the deployment succeeded. */
export async function deployFirstVersion(f: Fleet, ruleset: string, host: string): Promise<void> {
  const d = await f.t.req("POST", "/v1/deployments", {
    as: "operator",
    body: { ruleset, version: 1, selector: { hosts: [host] }, strategy: { canary: 0, batchSize: 1 } },
  });
  assert.equal(d.statusCode, 202, d.body);
  const id = (d.json() as { id: string }).id;
  await waitFor(
    async () => ((await f.t.req("GET", `/v1/deployments/${id}`)).json() as { status: string }).status === "succeeded",
    60_000,
    "the deployment",
    100,
  );
}

/**
 * The nft counter, the kernel's accounting element of `src` and the API's accounting total
 * for `host` all equal `sent` UDP packets of `size` payload bytes (IPv4: size + 28 on the wire).
 */
export async function assertCountedExactly(
  f: Fleet,
  a: { netns: string; host: string; src: string; sent: number; size: number },
): Promise<void> {
  const { sent } = a;
  const bytes = sent * (a.size + 28);
  const drv = { netns: a.netns };
  const counter = await readCounter("inet", "palisade", "udp_seen", drv);
  assert.deepEqual([counter.packets, counter.bytes], [sent, bytes], "the nft counter");
  const set = await readSet("inet", "palisade", "acct_lan_src", drv);
  const el = set.elements.find((e) => e.key === a.src);
  assert.deepEqual([el?.packets, el?.bytes], [sent, bytes], "the kernel's accounting element");
  const apiRow = async () => {
    const r = await f.t.req("GET", `/v1/accounting/tables/lan?host=${a.host}&limit=50`);
    if (r.statusCode !== 200) return undefined;
    return (r.json() as { items: { ip: string; srcPackets: number; srcBytes: number }[] }).items.find(
      (x) => x.ip === a.src,
    );
  };
  let row = await apiRow();
  for (let i = 0; i < 150 && row?.srcPackets !== sent; i++) {
    await new Promise((r) => setTimeout(r, 200));
    row = await apiRow();
  }
  assert.deepEqual([row?.srcPackets, row?.srcBytes], [sent, bytes], "the API's accounting total");
}
