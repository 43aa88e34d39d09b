// SNAT/DNAT to an address range, proved with packets: the dump (on the client: nat
// POSTROUTING SNAT to 10.77.0.1-10.77.0.3:1024-1030, nat OUTPUT DNAT to the server's two
// addresses .2-.3, port 7302) is loaded with iptables-restore, and its import rendered for
// nftables and for iptables-restore, each on a client of its own. A probe on the server (at
// prerouting, before routing) counts datagrams whose source / destination fall in the ranges.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";
import { addProbe, type Pair, probeCounts, VARIANTS, variantLab } from "../support/import-lab.ts";

/** The server's /24 without its last octet: the server is .2 and, for the DNAT range, .3. */
const net = (p: Pair) => p.link.b.ip4.replace(/\.2$/, "");
const { lab, pairs } = variantLab(VARIANTS, async (lab, pairs) => {
  for (const p of Object.values(pairs))
    await lab.exec(p.server, ["ip", "addr", "add", `${net(p)}.3/24`, "dev", p.link.b.ifname]);
});

const dump = (net: string) =>
  [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":INPUT ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
    `-A OUTPUT -p udp -m udp --dport 7301 -j DNAT --to-destination ${net}.2-${net}.3:7302`,
    "-A POSTROUTING -p udp -m udp --dport 7300 -j SNAT --to-source 10.77.0.1-10.77.0.3:1024-1030",
    "COMMIT",
    "",
  ].join("\n");

const SEND = `
import socket, sys
for port in (7300, 7301):
    for _ in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", (sys.argv[1], port))
        s.close()
`;

/** Datagrams seen at the server's prerouting (before routing): SNATed into the range, all to 7300, DNATed into it. */
async function counts(p: Pair): Promise<number[]> {
  await addProbe(lab, p.server, "prerouting", -300, [
    ["snat", "udp dport 7300 ip saddr 10.77.0.1-10.77.0.3 udp sport 1024-1030"],
    ["all7300", "udp dport 7300"],
    ["dnat", `udp dport 7302 ip daddr ${net(p)}.2-${net(p)}.3`],
  ]);
  await lab.exec(p.client, ["/usr/bin/python3", "-c", SEND, p.link.b.ip4]);
  return probeCounts(lab, p.server, ["snat", "all7300", "dnat"]);
}

test("SNAT and DNAT to address ranges: iptables-restore, the nftables and iptables renders send the same", async () => {
  for (const k of VARIANTS) {
    const s = pairs[k];
    const text = dump(net(s));
    if (k === "original") {
      await lab.exec(s.client, ["iptables-restore"], { input: text });
      continue;
    }
    const imported = importPolicy("iptables-save", text);
    assert.deepEqual(imported.errors, []);
    const v = validatePolicy(imported.policy, { target: k === "nft" ? "nftables" : "iptables" });
    assert.deepEqual(v.errors, []);
    if (k === "nft") {
      const nft = renderNft(v.policy!);
      assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
      assert.match(nft.text, /snat ip to 10\.77\.0\.1-10\.77\.0\.3:1024-1030/);
      await lab.nft(s.client, ["-f", "-"], nft.text);
    } else {
      const ipt = renderIptables(v.policy!);
      assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
      await lab.exec(s.client, ["iptables-restore", "--noflush"], { input: ipt.text });
    }
  }
  const want = [3, 3, 3];
  assert.deepEqual(await counts(pairs.original), want, "iptables-restore of the dump");
  assert.deepEqual(await counts(pairs.nft), want, "the nftables render");
  assert.deepEqual(await counts(pairs.iptables), want, "the iptables render");
});
