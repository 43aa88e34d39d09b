// xtables-addons targets rendered for nftables, on a real kernel: IPMARK reads the address
// in "human" byte order (10.200.1.1 = 0x0ac80101) with shift/and/or, for IPv4 and IPv6;
// TEE clones packets to a gateway (in the palisade_tee table); RAWDNAT/RAWSNAT rewrite
// addresses statelessly so a client talking to a virtual address gets its answers from it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { applyPolicy, ruleCounter, sleep } from "../support/nft-lab.ts";

const lab = createLab();
let client = "";
let server = "";
let collector = "";
let link: Link;
let side: Link;
before(async () => {
  ({ client, server, link } = await lab.pair());
  collector = await lab.addNamespace();
  side = await lab.link(server, collector);
});
after(() => lab.cleanup());

async function ipmarkPolicy(family: "ipv4" | "ipv6", ipmark: Record<string, unknown>, expected: number) {
  await applyPolicy(lab, server, {
    chains: {
      mangle_pre: {
        table: "mangle",
        hook: "prerouting",
        rules: [
          {
            comment: "ipmark",
            match: {
              icmpType: family === "ipv4" ? "echo-request" : undefined,
              icmpv6Type: family === "ipv6" ? "echo-request" : undefined,
            },
            action: { type: "ipmark", addr: "src", ...ipmark },
          },
        ],
      },
      input: {
        hook: "input",
        rules: [{ comment: "marked", match: { mark: expected }, action: "accept", counter: true }],
      },
    },
  } as never);
}

test("IPMARK: IPv4 source in human byte order, with shift, and-mask and or-mask", async () => {
  // 10.200.1.1 = 0x0ac80101
  await ipmarkPolicy("ipv4", { andMask: 0xffff, orMask: 0x10000 }, 0x10101);
  await lab.ping(client, link.b.ip4, { count: 3 });
  assert.equal((await ruleCounter(lab, server, "input", "marked")).packets, 3);
  await ipmarkPolicy("ipv4", { shift: 16 }, 0x0ac8);
  await lab.ping(client, link.b.ip4, { count: 2 });
  assert.equal((await ruleCounter(lab, server, "input", "marked")).packets, 2);
});

test("IPMARK: IPv6 source, shift selects the 32 bits that become the mark", async () => {
  // 2001:db8:1::1: the top 32 bits are 0x20010db8 (shift 96); shift 100 leaves 28 of them.
  await ipmarkPolicy("ipv6", { shift: 96 }, 0x20010db8);
  await lab.ping(client, link.b.ip6, { count: 2 });
  assert.equal((await ruleCounter(lab, server, "input", "marked")).packets, 2);
  // No shift: the low 32 bits (0x00000001), through the two-rule form.
  await ipmarkPolicy("ipv6", { andMask: 0xffff }, 0x1);
  await lab.ping(client, link.b.ip6, { count: 2 });
  assert.equal((await ruleCounter(lab, server, "input", "marked")).packets, 2);
  await ipmarkPolicy("ipv6", { shift: 100, andMask: 0xffff }, 0x10db);
  await lab.ping(client, link.b.ip6, { count: 2 });
  assert.equal((await ruleCounter(lab, server, "input", "marked")).packets, 2);
});

test("TEE: packets are cloned to the gateway", async () => {
  await applyPolicy(lab, server, {
    chains: {
      mangle_pre: {
        table: "mangle",
        hook: "prerouting",
        rules: [
          { comment: "tee", match: { protocol: "udp", dport: 9600 }, action: { type: "tee", gateway: side.b.ip4 } },
        ],
      },
    },
  });
  // The collector counts what arrives for the server's address (a table of this test's own namespace).
  await lab.nft(
    collector,
    ["-f", "-"],
    `table ip palisade_collect {\n chain pre {\n  type filter hook prerouting priority 0;\n  ip daddr ${link.b.ip4} udp dport 9600 counter\n }\n}\n`,
  );
  await lab.sendUdp(client, link.b.ip4, 9600, { count: 5, size: 10 });
  await sleep(200);
  const out = (await lab.nft(collector, ["list", "chain", "ip", "palisade_collect", "pre"])).stdout;
  assert.match(out, /counter packets 5 /, out);
});

test("RAWDNAT/RAWSNAT: stateless rewrite to and from a virtual address", async () => {
  const VIP = "10.200.1.99";
  const mac = JSON.parse((await lab.exec(server, ["ip", "-j", "link", "show", link.b.ifname])).stdout)[0]
    .address as string;
  await lab.exec(client, ["ip", "neigh", "replace", VIP, "lladdr", mac, "dev", link.a.ifname, "nud", "permanent"]);
  await applyPolicy(lab, server, {
    chains: {
      raw_pre: {
        table: "raw",
        hook: "prerouting",
        rules: [
          { comment: "rawdnat", match: { daddr: VIP }, action: { type: "rawdnat", to: link.b.ip4 }, counter: true },
        ],
      },
      rawpost: {
        table: "rawpost",
        hook: "postrouting",
        rules: [
          {
            comment: "rawsnat",
            match: { saddr: link.b.ip4, daddr: link.a.ip4, protocol: "udp", sport: 9700 },
            action: { type: "rawsnat", to: VIP },
            counter: true,
          },
        ],
      },
    },
  });
  const echo = lab.background(server, ["socat", "UDP4-RECVFROM:9700,fork", "SYSTEM:echo pong"], {
    maxLifetimeMs: 20_000,
  });
  try {
    for (let i = 0; i < 30; i++) {
      if ((await lab.exec(server, ["ss", "-lunH", "sport = :9700"])).stdout.trim() !== "") break;
      await sleep(100);
    }
    // A connected UDP socket only accepts the answer if it comes from the VIP.
    let answer = "";
    for (let i = 0; i < 3 && answer !== "pong"; i++) {
      const r = await lab.exec(client, ["socat", "-T", "2", "-", `UDP4:${VIP}:9700`], {
        input: "ping\n",
        allowFailure: true,
        timeoutMs: 6000,
      });
      answer = r.stdout.trim();
    }
    assert.equal(answer, "pong", (await lab.nft(server, ["list", "table", "inet", "palisade"])).stdout);
    assert.ok((await ruleCounter(lab, server, "raw_pre", "rawdnat")).packets >= 1);
    assert.ok((await ruleCounter(lab, server, "rawpost", "rawsnat")).packets >= 1);
  } finally {
    await echo.stop();
  }
});
