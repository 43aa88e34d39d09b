// LOGMARK on a real kernel: the compiled rule (`log prefix ... group N`, NFLOG) delivers
// events that carry the packet mark (NFULA_MARK) and let the reader get the connection
// mark: from NFULA_CT where the kernel attaches conntrack data to NFLOG, otherwise (this
// kernel has no CONFIG_NETFILTER_NETLINK_GLUE_CT) by looking up the packet's conntrack
// entry. A small NFLOG listener (nflog-reader.py, raw netlink, inside the lab namespace)
// prints prefix, mark and ct mark per packet; no kernel log or global sysctl is involved.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createLab, type Link } from "../support/netns.ts";
import { applyPolicy, sleep } from "../support/nft-lab.ts";

const READER = fileURLToPath(new URL("../support/bin/nflog-reader.py", import.meta.url));
const lab = createLab();
let client = "";
let server = "";
let link: Link;
before(async () => {
  ({ client, server, link } = await lab.pair());
});
after(() => lab.cleanup());

test("LOGMARK events carry the packet mark and the ct mark, with the prefix", async () => {
  await applyPolicy(lab, server, {
    chains: {
      mangle_in: {
        table: "mangle",
        hook: "prerouting",
        rules: [
          { comment: "mark", match: { protocol: "udp", dport: 9400 }, action: { type: "mark", value: 0x2a } },
          {
            comment: "ctmark",
            match: { protocol: "udp", dport: 9400 },
            action: { type: "connmark", op: "set", value: 0x77 },
          },
          {
            comment: "logmark",
            match: { protocol: "udp", dport: 9400 },
            action: { type: "logmark", prefix: "LM ", group: 7 },
          },
        ],
      },
    },
  });
  const reader = lab.background(server, ["/usr/bin/python3", READER, "7", "3", "10"], { maxLifetimeMs: 20_000 });
  try {
    for (let i = 0; i < 50 && !reader.output().includes("ready"); i++) await sleep(100);
    assert.ok(reader.output().includes("ready"), reader.output());
    await lab.sendUdp(client, link.b.ip4, 9400, { count: 3, size: 20 });
    for (
      let i = 0;
      i < 50 &&
      reader
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{")).length < 3;
      i++
    )
      await sleep(100);
    const events = reader
      .output()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { prefix: string; mark: number; ctmark: number });
    assert.equal(events.length, 3, reader.output());
    for (const e of events) assert.deepEqual(e, { prefix: "LM ", mark: 0x2a, ctmark: 0x77 });
  } finally {
    await reader.stop();
  }
});
