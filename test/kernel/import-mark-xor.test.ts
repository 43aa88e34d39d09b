// MARK flipping bits side by side: kube-proxy's `-j MARK --set-xmark 0x4000/0x0` (mark ^=
// 0x4000, what iptables-save prints for --xor-mark), loaded with iptables-restore in one pair of
// namespaces, imported and rendered for nftables (`meta mark set meta mark ^ ...`) in a
// second, and rendered back by Palisade's iptables compiler in a third. Large pings get mark
// 0x1 first, then every ping is flipped by 0x4001: small ones end with 0x4001, large ones with
// 0x4000, which filter INPUT drops. Setting (not flipping) would give both 0x4001.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { applyPolicy } from "../support/nft-lab.ts";

const lab = createLab();
after(() => lab.cleanup());

const SAVE = [
  "*mangle",
  ":PREROUTING ACCEPT [0:0]",
  "-A PREROUTING -p icmp -m length --length 200:65535 -j MARK --set-xmark 0x1/0xffffffff",
  "-A PREROUTING -p icmp -j MARK --set-xmark 0x4001/0x0",
  "COMMIT",
  "*filter",
  ":INPUT ACCEPT [0:0]",
  "-A INPUT -m mark --mark 0x4000 -j DROP",
  "COMMIT",
  "",
].join("\n");

async function answered(p: { client: string; link: Link }): Promise<{ small: number; large: number }> {
  const small = await lab.ping(p.client, p.link.b.ip4, { count: 3, size: 56, waitS: 0.3 });
  const large = await lab.ping(p.client, p.link.b.ip4, { count: 3, size: 300, waitS: 0.3 });
  return { small: small.received, large: large.received };
}

test("--set-xmark 0x4001/0x0 flips the mark: large pings (mark 0x4000) dropped, small answered, on all three", async () => {
  const xt = await lab.pair();
  const pal = await lab.pair();
  const palIpt = await lab.pair();
  await lab.exec(xt.server, ["iptables-restore"], { input: SAVE });

  const imported = importPolicy("iptables-save", SAVE, { family: "ipv4" });
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, pal.server, v.policy as never);
  assert.match(text, /meta mark set meta mark \^ 0x00004001/);

  const ipt = renderIptables(v.policy as never, { failsafe: { apiAddresses: ["10.250.0.1"], apiPort: 8443 } });
  assert.ok(ipt.ok, JSON.stringify(ipt.ok ? [] : ipt.errors));
  assert.match(ipt.text, /-j MARK --set-xmark 0x4001\/0x0$/m);
  await lab.exec(palIpt.server, ["iptables-restore", "--noflush"], { input: ipt.text, timeoutMs: 20_000 });

  const want = { small: 3, large: 0 };
  assert.deepEqual(await answered(xt), want);
  assert.deepEqual(await answered(pal), want);
  assert.deepEqual(await answered(palIpt), want);
});
