// `-j NFQUEUE` proved with packets: with no userspace listener a queued packet is dropped,
// and with --queue-bypass it is accepted (it leaves the hook's chain). The dump is loaded with
// iptables-restore (the reference) and Palisade's iptables rendering of its import on
// servers of their own; a probe table after filter (priority 10) counts what got through.
// The nftables rendering is loaded too where the kernel has nft_queue (CONFIG_NFT_QUEUE);
// without it nft reports "No such file or directory" for the queue statement, and only the
// iptables side can be compared (iptables-nft uses the xt NFQUEUE target through nft_compat).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";

const lab: NetnsLab = createLab();
type Side = { client: string; server: string; ip4: string };
const side: Record<"orig" | "nft" | "ipt", Side> = {} as never;
before(async () => {
  for (const k of ["orig", "nft", "ipt"] as const) {
    const { client, server, link } = await lab.pair();
    side[k] = { client, server, ip4: link.b.ip4 };
  }
});
after(() => lab.cleanup());

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

async function probe(ns: string): Promise<void> {
  const rules = PORTS.map((p) => `  udp dport ${p} counter comment "p${p}"`).join("\n");
  await lab.nft(
    ns,
    ["-f", "-"],
    `table ip probe {\n chain in {\n  type filter hook input priority 10; policy accept;\n${rules}\n }\n}\n`,
  );
}

/** Datagrams per port that got past filter INPUT. */
async function through(ns: string): Promise<number[]> {
  const out = JSON.parse((await lab.nft(ns, ["-j", "list", "table", "ip", "probe"])).stdout) as {
    nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
  };
  const by = new Map(
    out.nftables.flatMap((i) =>
      i.rule ? [[i.rule.comment!, i.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0] as const] : [],
    ),
  );
  return PORTS.map((p) => by.get(`p${p}`) ?? -1);
}

test("NFQUEUE with no listener drops, --queue-bypass accepts: iptables-restore and Palisade's renders agree", async (t) => {
  const imported = importPolicy("iptables-save", DUMP);
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.deepEqual(v.errors, []);
  const nft = renderNft(v.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  const ipt = renderIptables(v.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  await lab.exec(side.orig.server, ["iptables-restore"], { input: DUMP });
  await lab.exec(side.ipt.server, ["iptables-restore", "--noflush"], { input: ipt.text });
  const nftLoad = await lab.exec(side.nft.server, ["nft", "-f", "-"], { input: nft.text, allowFailure: true });
  const sides: Side[] = [side.orig, side.ipt];
  if (nftLoad.code === 0) sides.push(side.nft);
  else {
    // The statements parse (a syntax error would say so); the kernel lacks the expression.
    assert.match(nftLoad.stderr, /Could not process rule: No such file or directory[\s\S]*queue num/);
    t.diagnostic("this kernel has no nft_queue: the nftables rendering parsed but was not loaded");
  }
  for (const s of sides) {
    await probe(s.server);
    await lab.exec(s.client, ["/usr/bin/python3", "-c", SEND, s.ip4, ...PORTS.map(String)]);
  }
  const want = [0, 3, 3, 0];
  assert.deepEqual(await through(side.orig.server), want, "iptables-restore of the dump");
  assert.deepEqual(await through(side.ipt.server), want, "Palisade's iptables rendering");
  if (nftLoad.code === 0) assert.deepEqual(await through(side.nft.server), want, "the nftables rendering");
});
