// The ban table beside the policy: with bans loaded, a policy apply, a rollback (confirm
// timeout) and drift repair leave `inet palisade_bans`'s elements and their running
// timeouts alone (none is removed, none is re-created with a fresh timeout).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { memoryLog } from "../../src/runtime/log.ts";
import { openAgentLab, type AgentLab } from "../support/agent-lab.ts";
import { banTimeouts } from "../support/nft-lab.ts";

const policy = (lan: string, port: number) => ({
  accounting: { lan: { prefix: lan } },
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { action: { type: "account", table: "lan" } },
        { match: { protocol: "tcp", dport: port }, action: "drop" },
      ],
    },
  },
});

describe("policy changes leave the ban table alone (kernel, netns, grpc)", () => {
  let l: AgentLab;
  before(async () => {
    l = await openAgentLab({ name: "bans-policy" });
  });
  after(() => l.close());

  /** Element -> the kernel's remaining ms. */
  const bansNow = () => banTimeouts(l.lab, l.ns);
  /** Same elements as `prev`, each with no more time left than it had (never refreshed). */
  const unchanged = async (prev: Map<string, number>, what: string) => {
    const now = await bansNow();
    assert.deepEqual([...now.keys()].sort(), [...prev.keys()].sort(), `${what}: the ban elements stay`);
    for (const [a, left] of now)
      assert.ok(left <= prev.get(a)!, `${what}: ${a}'s timeout was reset (${left} > ${prev.get(a)})`);
    return now;
  };

  it("apply, rollback and drift repair keep every ban and its timeout", async () => {
    const lan = l.link!.net4;
    const agent = await l.start([], { log: memoryLog("warn") });
    await l.api.waitFor((r) => r.find((x) => x.msg.hello));
    l.api.send({
      banUpdate: {
        full: true,
        lists: [
          {
            list: "edge",
            add: [
              { address: "198.51.100.7", ttlMs: "600000" },
              { address: "203.0.113.0/24", ttlMs: "600000" },
              { address: "2001:db8::/48", ttlMs: "600000" },
            ],
            remove: [],
          },
        ],
      },
    });
    for (let i = 0; i < 100 && (await bansNow()).size < 3; i++) await new Promise((r) => setTimeout(r, 50));
    let prev = await bansNow();
    assert.equal(prev.size, 3, "the bans are loaded");

    const desired = (v: number, confirmTimeoutSeconds: number) => ({
      desiredState: {
        deploymentId: `d${v}`,
        targetId: `t${v}`,
        version: { ruleset: "edge", version: v, checksum: `c${v}` },
        policyJson: JSON.stringify(policy(lan, 2000 + v)),
        confirmTimeoutSeconds,
      },
    });
    const result = (t: string) =>
      l.api.waitFor(
        (r) => r.find((x) => x.msg.applyResult?.targetId === t && x.msg.applyResult.status !== "APPLY_STATUS_APPLYING"),
        15_000,
      );
    l.api.send(desired(1, 30));
    assert.equal((await result("t1")).msg.applyResult.status, "APPLY_STATUS_APPLIED");
    assert.match(await l.list(), /dport 2001 drop/);
    prev = await unchanged(prev, "apply");

    l.api.autoConfirm = false;
    l.api.send(desired(2, 2));
    assert.equal((await result("t2")).msg.applyResult.status, "APPLY_STATUS_ROLLED_BACK");
    l.api.autoConfirm = true;
    assert.match(await l.list(), /dport 2001 drop/, "rolled back to v1");
    prev = await unchanged(prev, "rollback");

    await l.lab.nft(l.ns, ["delete", "table", "inet", "palisade"]);
    const d = await agent.drift.check({ restore: true });
    assert.ok(d.restored, "drift repair restored the policy");
    assert.match(await l.list(), /dport 2001 drop/);
    await unchanged(prev, "drift repair");
  });
});
