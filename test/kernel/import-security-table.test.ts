// The security table (iptable_security: after filter at input, forward and output) side by
// side: a dump whose filter INPUT accepts every ping and whose security INPUT has policy DROP
// and accepts only pings of under 200 bytes, loaded with iptables-restore in one pair of
// namespaces, imported and rendered for nftables (priority security) in a second, and
// rendered back to iptables-restore text by Palisade's iptables compiler in a third.
// A filter ACCEPT ends only the filter chain: the security chain still sees the packet, so
// the large pings are dropped there on all three and the small ones answered.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { applyPolicy } from "../support/nft-lab.ts";

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

async function answered(p: { client: string; link: Link }): Promise<{ small: number; large: number }> {
  const small = await lab.ping(p.client, p.link.b.ip4, { count: 3, size: 56, waitS: 0.3 });
  const large = await lab.ping(p.client, p.link.b.ip4, { count: 3, size: 300, waitS: 0.3 });
  return { small: small.received, large: large.received };
}

test("security INPUT policy DROP after a filter ACCEPT: small pings answered, large dropped, on all three", async () => {
  const xt = await lab.pair();
  const pal = await lab.pair();
  const palIpt = await lab.pair();
  await lab.exec(xt.server, ["iptables-restore"], { input: SAVE });

  const imported = importPolicy("iptables-save", SAVE, { family: "ipv4" });
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, pal.server, v.policy as never);
  assert.match(text, /type filter hook input priority security/);

  const ipt = renderIptables(v.policy as never, { failsafe: { apiAddresses: ["10.250.0.1"], apiPort: 8443 } });
  assert.ok(ipt.ok, JSON.stringify(ipt.ok ? [] : ipt.errors));
  assert.match(ipt.text, /^\*security$/m);
  await lab.exec(palIpt.server, ["iptables-restore", "--noflush"], { input: ipt.text, timeoutMs: 20_000 });

  const want = { small: 3, large: 0 };
  assert.deepEqual(await answered(xt), want);
  assert.deepEqual(await answered(pal), want);
  assert.deepEqual(await answered(palIpt), want);
});
