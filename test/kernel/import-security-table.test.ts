// The security table (iptable_security: after filter at input, forward and output) side by
// side: a dump whose filter INPUT accepts every ping and whose security INPUT has policy DROP
// and accepts only pings of under 200 bytes, loaded with iptables-restore in one pair of
// namespaces, imported and rendered for nftables (priority security) in a second, and
// rendered back to iptables-restore text by Palisade's iptables compiler in a third.
// A filter ACCEPT ends only the filter chain: the security chain still sees the packet, so
// the large pings are dropped there on all three and the small ones answered.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { smallLargeAnswered, threePairs, VARIANTS } from "../support/import-lab.ts";

const lab = createLab();
after(() => lab.cleanup());

const SAVE = [
  "*filter",
  ":INPUT ACCEPT [0:0]",
  "-A INPUT -p icmp -j ACCEPT",
  "COMMIT",
  "*security",
  ":INPUT DROP [0:0]",
  ":FORWARD ACCEPT [0:0]",
  ":OUTPUT ACCEPT [0:0]",
  ":SMALL - [0:0]",
  "-A INPUT -p icmp -j SMALL",
  "-A SMALL -m length --length 0:199 -j ACCEPT",
  "COMMIT",
  "",
].join("\n");

test("security INPUT policy DROP after a filter ACCEPT: small pings answered, large dropped, on all three", async () => {
  const { pairs, nft, ipt } = await threePairs(lab, SAVE);
  assert.match(nft, /type filter hook input priority security/);
  assert.match(ipt, /^\*security$/m);

  const want = { small: 3, large: 0 };
  for (const k of VARIANTS) assert.deepEqual(await smallLargeAnswered(lab, pairs[k]), want, k);
});
