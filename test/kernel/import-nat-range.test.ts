// SNAT/DNAT to an address range, proved with packets: the dump (on the client: nat
// POSTROUTING SNAT to 10.77.0.1-10.77.0.3:1024-1030, nat OUTPUT DNAT to the server's two
// addresses .2-.3, port 7302) is loaded with iptables-restore, and its import rendered for
// nftables and for iptables-restore, each on a client of its own. A probe on the server (at
// prerouting, before routing) counts datagrams whose source / destination fall in the ranges.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";

const lab: NetnsLab = createLab();
type Side = { client: string; server: string; ip4: string; net: string };
const side: Record<"orig" | "nft" | "ipt", Side> = {} as never;
before(async () => {
  for (const k of ["orig", "nft", "ipt"] as const) {
    const { client, server, link } = await lab.pair();
    const net = link.b.ip4.replace(/\.2$/, "");
    // The DNAT range's second address is the server's too.
    await lab.exec(server, ["ip", "addr", "add", `${net}.3/24`, "dev", link.b.ifname]);
    side[k] = { client, server, ip4: link.b.ip4, net };
  }
});
after(() => lab.cleanup());

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

async function counts(s: Side): Promise<number[]> {
  await lab.nft(
    s.server,
    ["-f", "-"],
    [
      "table ip probe {",
      " chain pre {",
      "  type filter hook prerouting priority -300; policy accept;",
      '  udp dport 7300 ip saddr 10.77.0.1-10.77.0.3 udp sport 1024-1030 counter comment "snat"',
      '  udp dport 7300 counter comment "all7300"',
      `  udp dport 7302 ip daddr ${s.net}.2-${s.net}.3 counter comment "dnat"`,
      " }",
      "}",
      "",
    ].join("\n"),
  );
  await lab.exec(s.client, ["/usr/bin/python3", "-c", SEND, s.ip4]);
  const out = JSON.parse((await lab.nft(s.server, ["-j", "list", "table", "ip", "probe"])).stdout) as {
    nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
  };
  const by = new Map(
    out.nftables.flatMap((i) =>
      i.rule ? [[i.rule.comment!, i.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0] as const] : [],
    ),
  );
  return ["snat", "all7300", "dnat"].map((c) => by.get(c) ?? -1);
}

test("SNAT and DNAT to address ranges: iptables-restore, the nftables and iptables renders send the same", async () => {
  for (const k of ["orig", "nft", "ipt"] as const) {
    const s = side[k];
    const text = dump(s.net);
    if (k === "orig") {
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
  assert.deepEqual(await counts(side.orig), want, "iptables-restore of the dump");
  assert.deepEqual(await counts(side.nft), want, "the nftables render");
  assert.deepEqual(await counts(side.ipt), want, "the iptables render");
});
