// Drift checks racing applies: the whole agent (startAgent) against a real gRPC peer
// applies and confirms a sequence of versions while drift checks (with restore) run in a
// tight bounded loop. After every confirmed version the kernel must hold exactly that
// version: a check that compared against the previous desired state would "restore" it
// (seen in the fleet: v2 restored after v3 was confirmed).

import { nftDriver } from "../../src/engine/driver/index.ts";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Applier } from "../../src/agent/apply.ts";
import { failsafeContext } from "../../src/agent/desired.ts";
import { renderDesired } from "../../src/agent/render.ts";
import { compare, dynamicSets, normalise } from "../../src/agent/drift.ts";
import { readPalisade } from "../../src/agent/kernel/read.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { openAgentLab, type AgentLab } from "../support/agent-lab.ts";

const VERSIONS = 6;

const policy = (lan: string, v: number) => ({
  accounting: { lan: { prefix: lan } },
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { action: { type: "account", table: "lan" } },
        ...Array.from({ length: v }, (_, i) => ({
          match: { protocol: "tcp", dport: 2000 + v * 10 + i },
          action: "drop",
        })),
      ],
    },
  },
});

describe("agent drift checks never undo a confirmed apply (kernel, netns, grpc)", () => {
  let l: AgentLab;
  let scratch: string;

  before(async () => {
    l = await openAgentLab({ name: "agent-drift-race" });
    scratch = await l.lab.addNamespace();
  });
  after(() => l.close());

  it("the kernel holds the last confirmed version after every apply, with drift checks in a tight loop", async () => {
    const { api, ns } = l;
    const lan = l.link!.net4;
    const server = `127.0.0.1:${api.port}`;
    const log = memoryLog("warn");
    const agent = await l.start([], { log });
    await api.waitFor((r) => r.find((x) => x.msg.hello));
    const failsafe = await failsafeContext(server, "policy");
    const scratchApplier = new Applier(nftDriver({ netns: scratch }), log);
    let restores = 0;

    for (let v = 1; v <= VERSIONS; v++) {
      const json = JSON.stringify(policy(lan, v));
      api.send({
        desiredState: {
          deploymentId: `d${v}`,
          targetId: `t${v}`,
          version: { ruleset: "edge", version: v, checksum: `c${v}` },
          policyJson: json,
          confirmTimeoutSeconds: 30,
        },
      });
      // Drift checks back to back (bounded) until the version is applied, then a few more
      // while the agent records it as confirmed.
      let after = -1;
      for (let i = 0; i < 300 && after < 8; i++) {
        const r = await agent.drift.check({ restore: true });
        if (r.restored) restores++;
        if (after >= 0) after++;
        else if (api.received.some((x) => x.msg.applyResult?.targetId === `t${v}`)) after = 0;
      }
      const res = await api.waitFor((r) =>
        r.find((x) => x.msg.applyResult?.targetId === `t${v}` && x.msg.applyResult.status !== "APPLY_STATUS_APPLYING"),
      );
      assert.equal(res.msg.applyResult.status, "APPLY_STATUS_APPLIED", res.msg.applyResult.error);
      // Let everything queued behind the lock finish, then one more check.
      await agent.applier.exclusive(async () => undefined);
      await agent.drift.check({ restore: true });

      // The rendered desired text of v, loaded into a scratch namespace and normalised as
      // the detector does, against the agent's kernel.
      const rendered = renderDesired(json, failsafe);
      assert.ok(rendered.ok);
      await scratchApplier.applyText(rendered.text);
      const dyn = dynamicSets(rendered.text);
      const want = normalise(await readPalisade(nftDriver({ netns: scratch })), dyn);
      const have = normalise(await readPalisade(nftDriver({ netns: ns })), dyn);
      assert.deepEqual(compare(want, have), [], `kernel differs from confirmed v${v}`);
      const listing = (await l.lab.nft(ns, ["list", "table", "inet", "palisade"])).stdout;
      assert.match(listing, new RegExp(`dport ${2000 + v * 10 + v - 1} drop`), `v${v}'s last rule is in the kernel`);
    }
    assert.equal(restores, 0, "no drift check restored anything: only applies changed the kernel");
  });
});
