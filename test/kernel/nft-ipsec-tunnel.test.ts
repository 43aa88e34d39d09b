// IPsec tunnel endpoints (`-m policy --tunnel-src/--tunnel-dst`, nft `ipsec in|out ip saddr`)
// on a real kernel. This kernel has no IPsec transform (CONFIG_INET_ESP, CONFIG_INET_AH and
// CONFIG_INET_IPCOMP are off: `ip xfrm state add ... proto esp|ah` answers "Requested type not
// found"), so no packet can arrive decapsulated here. What is proven: the rendered rules load
// (`nft -f`) and list back as written, the iptables render loads too (xt_policy), and packets
// without IPsec match neither target's rules, negated endpoints included, as xt_policy's
// `--pol ipsec` has it (nft_xfrm does not match a packet without a security association).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { applyPolicy, ruleCounter } from "../support/nft-lab.ts";
import { Policy, type PolicyInput } from "../../src/engine/policy/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";

const lab = createLab();
let client = "";
let nftServer = "";
let iptServer = "";
let toNft: Link;
let toIpt: Link;
before(async () => {
  client = await lab.addNamespace();
  nftServer = await lab.addNamespace();
  iptServer = await lab.addNamespace();
  toNft = await lab.link(client, nftServer);
  toIpt = await lab.link(client, iptServer);
});
after(() => lab.cleanup());

const udp9600 = { protocol: "udp", dport: 9600 } as const;
const DOC: PolicyInput = {
  failsafe: { enabled: false },
  chains: {
    input: {
      hook: "input",
      rules: [
        {
          comment: "not from 192.0.2.1",
          match: { ...udp9600, ipsec: { direction: "in", policy: "ipsec", tunnelSrc: { not: "192.0.2.1" } } },
          action: "accept",
          counter: true,
        },
        {
          comment: "v6 tunnel",
          match: {
            ...udp9600,
            ipsec: { direction: "in", policy: "ipsec", tunnelSrc: "2001:db8:ff::/48", tunnelDst: "2001:db8:fe::1" },
          },
          action: "accept",
          counter: true,
        },
        { comment: "rest", match: udp9600, action: "accept", counter: true },
      ],
    },
  },
};

test("tunnel endpoints load on nftables, list back as rendered, and match no packet without IPsec", async () => {
  const text = await applyPolicy(lab, nftServer, DOC);
  assert.match(text, /meta nfproto ipv4 udp dport 9600 ipsec in ip saddr != 192\.0\.2\.1 counter accept/);
  const listed = (await lab.nft(nftServer, ["list", "chain", "inet", "palisade", "input"])).stdout;
  assert.match(listed, /ipsec in ip saddr != 192\.0\.2\.1 counter/);
  assert.match(listed, /ipsec in ip6 saddr 2001:db8:ff::\/48 ipsec in ip6 daddr 2001:db8:fe::1 counter/);
  await lab.sendUdp(client, toNft.b.ip4, 9600, { count: 4 });
  await lab.sendUdp(client, toNft.b.ip6, 9600, { count: 3 });
  assert.equal((await ruleCounter(lab, nftServer, "input", "not from 192.0.2.1")).packets, 0);
  assert.equal((await ruleCounter(lab, nftServer, "input", "v6 tunnel")).packets, 0);
  assert.equal((await ruleCounter(lab, nftServer, "input", "rest")).packets, 7);
});

test("the iptables render loads (--mode tunnel added) and its rules match no packet without IPsec either", async () => {
  const r = renderIptables(Policy.parse(DOC));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(r.text, /-m policy --dir in --pol ipsec --mode tunnel ! --tunnel-src 192\.0\.2\.1 /);
  await lab.exec(iptServer, ["iptables-restore", "--noflush"], { input: r.text, timeoutMs: 20_000 });
  await lab.exec(iptServer, ["ip6tables-restore", "--noflush"], { input: r.text6, timeoutMs: 20_000 });
  await lab.sendUdp(client, toIpt.b.ip4, 9600, { count: 4 });
  await lab.sendUdp(client, toIpt.b.ip6, 9600, { count: 3 });
  const packets = async (bin: string) => {
    const out = (await lab.exec(iptServer, [bin, "-w", "-vnxL", "PAL-input"])).stdout;
    // pkts is the first column of each rule line; rules are in policy order.
    return out
      .split("\n")
      .filter((l) => /^\s*\d+\s+\d+\s+ACCEPT/.test(l))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
  };
  assert.deepEqual(await packets("iptables"), [0, 4]);
  assert.deepEqual(await packets("ip6tables"), [0, 3]);
});
