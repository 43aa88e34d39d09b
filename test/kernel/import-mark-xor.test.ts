// MARK flipping bits side by side: kube-proxy's `-j MARK --set-xmark 0x4000/0x0` (mark ^=
// 0x4000, what iptables-save prints for --xor-mark), loaded with iptables-restore in one pair of
// namespaces, imported and rendered for nftables (`meta mark set meta mark ^ ...`) in a
// second, and rendered back by Palisade's iptables compiler in a third. Large pings get mark
// 0x1 first, then every ping is flipped by 0x4001: small ones end with 0x4001, large ones with
// 0x4000, which filter INPUT drops. Setting (not flipping) would give both 0x4001.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { smallLargeAnswered, threePairs, VARIANTS } from "../support/import-lab.ts";

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

test("--set-xmark 0x4001/0x0 flips the mark: large pings (mark 0x4000) dropped, small answered, on all three", async () => {
  const { pairs, nft, ipt } = await threePairs(lab, SAVE);
  assert.match(nft, /meta mark set meta mark \^ 0x00004001/);
  assert.match(ipt, /-j MARK --set-xmark 0x4001\/0x0$/m);

  const want = { small: 3, large: 0 };
  for (const k of VARIANTS) assert.deepEqual(await smallLargeAnswered(lab, pairs[k]), want, k);
});
