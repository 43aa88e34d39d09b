// Growing quotas (quota2 --grow) from the compiled policy to the agent, on a real kernel:
// the policy is rendered by the real compiler and loaded in a lab namespace; the agent's
// collector reports each growing counter as a quota (grow: true, used by mode, limit 0)
// and never as a plain counter; the agent's reset zeroes the right kernel object for a
// growing counter of either mode and for a down-counting quota, and refuses a name the
// kernel does not hold.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, type Link, type NetnsLab } from "../support/netns.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { AgentError } from "../../src/agent/errors.ts";
import { resetQuotaByName } from "../../src/agent/quota-reset.ts";
import { Spool } from "../../src/agent/telemetry/spool.ts";
import { Collector } from "../../src/agent/telemetry/collector.ts";
import { nftDriver, readQuota } from "../../src/engine/driver/index.ts";
import { applyPolicy, namedCounter } from "../support/nft-lab.ts";

const PAYLOAD = 100;
const WIRE = PAYLOAD + 28;

describe("growing quotas: compiled policy -> agent reading -> reset (kernel, netns)", () => {
  let lab: NetnsLab;
  let client: string;
  let server: string;
  let link: Link;
  let dir: string;

  before(async () => {
    lab = createLab();
    ({ client, server, link } = await lab.pair());
    dir = await mkdtemp(join(tmpdir(), "palisade-grow-"));
  });
  after(async () => {
    await lab.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it("reported as quotas with grow: true and the kernel's count; reset by name in the kernel", async () => {
    await applyPolicy(lab, server, {
      quotas: { bt: { grow: true }, pk: { grow: true, mode: "packets", limit: 10 }, budget: { limit: 1_000_000 } },
      counters: { bt: {} }, // a plain counter may share a growing quota's name
      chains: {
        input: {
          hook: "input",
          rules: [
            { comment: "plain", match: { protocol: "udp", dport: 9400 }, action: { type: "counter", name: "bt" } },
            {
              comment: "bytes",
              match: { protocol: "udp", dport: 9400, quota: { name: "bt" } },
              action: { type: "mark", value: 1 },
            },
            {
              comment: "packets",
              match: { protocol: "udp", dport: 9400, quota: { name: "pk" } },
              action: { type: "mark", value: 2 },
            },
            { comment: "budget", match: { protocol: "udp", dport: 9400, quota: { name: "budget" } }, action: "accept" },
          ],
        },
      },
    });
    const log = memoryLog("warn");
    const spool = await Spool.open(dir, { maxBytes: 1 << 22, maxBatches: 100 }, log);
    const c = await Collector.create({
      driver: nftDriver({ netns: server }),
      spool,
      epoch: "grow",
      log,
      resumeFile: join(dir, "resume.json"),
    });
    const N = 9;
    await lab.sendUdp(client, link.b.ip4, 9400, { count: N, size: PAYLOAD });
    const b = await c.collect();
    assert.ok(b);
    const q = new Map(b.quotas.map((x) => [x.name, x]));
    // uint64 fields are decimal strings on the wire (src/protocol: no precision loss).
    assert.deepEqual(q.get("bt"), { name: "bt", mode: "bytes", limit: "0", used: String(N * WIRE), grow: true });
    assert.deepEqual(
      q.get("pk"),
      { name: "pk", mode: "packets", limit: "0", used: String(10 + N), grow: true },
      "starts at its limit, counts packets",
    );
    assert.deepEqual(q.get("budget"), {
      name: "budget",
      mode: "bytes",
      limit: "1000000",
      used: String(N * WIRE),
      grow: false,
    });
    assert.deepEqual(
      b.counters.map((x) => [x.name, x.packets]),
      [["bt", String(N)]],
      "only the plain counter is a counter",
    );

    const drv = { netns: server };
    await resetQuotaByName("palisade", "bt", nftDriver(drv));
    await resetQuotaByName("palisade", "pk", nftDriver(drv));
    await resetQuotaByName("palisade", "budget", nftDriver(drv));
    assert.deepEqual(await namedCounter(lab, server, "quota_bt_grow_bytes"), { packets: 0, bytes: 0 });
    assert.deepEqual(await namedCounter(lab, server, "quota_pk_grow_packets"), { packets: 0, bytes: 0 });
    assert.equal((await readQuota("inet", "palisade", "budget", drv)).used, 0);
    assert.deepEqual(
      await namedCounter(lab, server, "bt"),
      { packets: N, bytes: N * WIRE },
      "the plain counter of the same name is untouched",
    );
    await assert.rejects(
      resetQuotaByName("palisade", "nope", nftDriver(drv)),
      (e) => e instanceof AgentError && e.code === "unknown_quota" && /nope/.test(e.message),
    );

    await lab.sendUdp(client, link.b.ip4, 9400, { count: 2, size: PAYLOAD });
    const after = await c.collect();
    assert.ok(after);
    const q2 = new Map(after.quotas.map((x) => [x.name, x.used]));
    assert.deepEqual(
      [q2.get("bt"), q2.get("pk"), q2.get("budget")],
      [String(2 * WIRE), "2", String(2 * WIRE)],
      "counting again from zero",
    );
  });
});
