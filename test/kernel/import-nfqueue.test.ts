// `-j NFQUEUE` proved with packets: with no userspace listener a queued packet is dropped,
// and with --queue-bypass it is accepted (it leaves the hook's chain). The dump is loaded with
// iptables-restore (the reference) and Palisade's iptables rendering of its import on
// servers of their own; a probe table after filter (priority 10) counts what got through.
// The nftables rendering is loaded too where the kernel has nft_queue (CONFIG_NFT_QUEUE);
// without it nft reports "No such file or directory" for the queue statement, and only the
// iptables side can be compared (iptables-nft uses the xt NFQUEUE target through nft_compat).
import { test } from "node:test";
import assert from "node:assert/strict";
import { addProbe, importRenders, type Pair, probeCounts, variantLab } from "../support/import-lab.ts";

const { lab, pairs } = variantLab();

const DUMP = [
  "*filter",
  ":INPUT ACCEPT [0:0]",
  "-A INPUT -p udp -m udp --dport 7201 -j NFQUEUE --queue-num 3",
  "-A INPUT -p udp -m udp --dport 7202 -j NFQUEUE --queue-num 4 --queue-bypass",
  "-A INPUT -p udp -m udp --dport 7203 -j NFQUEUE --queue-balance 2:5 --queue-bypass --queue-cpu-fanout",
  "-A INPUT -p udp -m udp --dport 7204 -j NFQUEUE --queue-balance 6:9",
  // Reached only by what the queue rules let through: a bypassed packet leaves the chain.
  "-A INPUT -p udp -m udp --dport 7201:7204 -j DROP",
  "COMMIT",
  "",
].join("\n");
const PORTS = [7201, 7202, 7203, 7204];

const SEND = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in sys.argv[2:]:
    for _ in range(3):
        s.sendto(b"x", (sys.argv[1], int(p)))
`;

/** Datagrams per port that got past filter INPUT (counted by a probe after it, priority 10). */
const through = (ns: string) =>
  probeCounts(
    lab,
    ns,
    PORTS.map((p) => `p${p}`),
  );

test("NFQUEUE with no listener drops, --queue-bypass accepts: iptables-restore and Palisade's renders agree", async (t) => {
  const { nft, ipt } = importRenders(DUMP);
  await lab.exec(pairs.original.server, ["iptables-restore"], { input: DUMP });
  await lab.exec(pairs.iptables.server, ["iptables-restore", "--noflush"], { input: ipt.text });
  const nftLoad = await lab.exec(pairs.nft.server, ["nft", "-f", "-"], { input: nft, allowFailure: true });
  const sides: Pair[] = [pairs.original, pairs.iptables];
  if (nftLoad.code === 0) sides.push(pairs.nft);
  else {
    // The statements parse (a syntax error would say so); the kernel lacks the expression.
    assert.match(nftLoad.stderr, /Could not process rule: No such file or directory[\s\S]*queue num/);
    t.diagnostic("this kernel has no nft_queue: the nftables rendering parsed but was not loaded");
  }
  for (const s of sides) {
    const rules = PORTS.map((p) => [`p${p}`, `udp dport ${p}`] as const);
    await addProbe(lab, s.server, "input", 10, rules);
    await lab.exec(s.client, ["/usr/bin/python3", "-c", SEND, s.link.b.ip4, ...PORTS.map(String)]);
  }
  const want = [0, 3, 3, 0];
  assert.deepEqual(await through(pairs.original.server), want, "iptables-restore of the dump");
  assert.deepEqual(await through(pairs.iptables.server), want, "Palisade's iptables rendering");
  if (nftLoad.code === 0) assert.deepEqual(await through(pairs.nft.server), want, "the nftables rendering");
});
