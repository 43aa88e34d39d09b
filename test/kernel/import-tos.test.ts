// TOS rewriting side by side: nat-gateway-tos.sh's `-j TOS --set-tos Minimize-Delay` (value
// 0x10, mask 0x3f: the precedence bits are kept, the rest becomes 0x10) and DSCP/numeric
// forms, loaded with iptables-restore in one pair of namespaces and imported + rendered for
// nftables in another. The client sends UDP datagrams with chosen TOS bytes; a probe table on
// each server counts, at input, the TOS byte after mangle prerouting rewrote it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { applyPolicy } from "../support/nft-lab.ts";

const lab = createLab();
let xt: { client: string; server: string; link: Link };
let pal: { client: string; server: string; link: Link };
before(async () => {
  xt = await lab.pair();
  pal = await lab.pair();
});
after(() => lab.cleanup());

const SEND = `
import socket, sys
dst, port, tos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
for _ in range(3):
    s.sendto(b"x", (dst, port))
`;

/** The TOS bytes the server saw on UDP to `port`, with how many datagrams each. */
async function seen(
  lab_: typeof lab,
  side: { client: string; server: string; link: Link },
  port: number,
  tos: number,
): Promise<Record<string, number>> {
  const rules = Array.from(
    { length: 256 },
    (_, b) => `  udp dport ${port} @nh,8,8 0x${b.toString(16).padStart(2, "0")} counter comment "tos ${b}"`,
  ).join("\n");
  await lab_.nft(
    side.server,
    ["-f", "-"],
    `table ip probe\ndelete table ip probe\ntable ip probe {\n chain in {\n  type filter hook input priority 10; policy accept;\n${rules}\n }\n}\n`,
  );
  await lab_.exec(side.client, ["/usr/bin/python3", "-c", SEND, side.link.b.ip4, String(port), String(tos)]);
  const out = JSON.parse((await lab_.nft(side.server, ["-j", "list", "table", "ip", "probe"])).stdout) as {
    nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
  };
  const got: Record<string, number> = {};
  for (const item of out.nftables) {
    const packets = item.rule?.expr.find((e) => e.counter)?.counter?.packets ?? 0;
    if (packets > 0) got[`0x${Number(item.rule!.comment!.slice(4)).toString(16).padStart(2, "0")}`] = packets;
  }
  return got;
}

const LINES = [
  "-A PREROUTING -p udp --dport 7001 -j TOS --set-tos Minimize-Delay",
  "-A PREROUTING -p udp --dport 7002 -j TOS --set-tos 0x08",
  "-A PREROUTING -p udp --dport 7003 -j DSCP --set-dscp-class EF",
  "-A PREROUTING -p udp --dport 7004 -j TOS --xor-tos 0x21",
];

test("the lines load with iptables-restore; imported, they render and load for nftables", async () => {
  const save = ["*mangle", ...LINES, "COMMIT", ""].join("\n");
  await lab.exec(xt.server, ["iptables-restore"], { input: save });
  const imported = importPolicy("iptables-save", save);
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, pal.server, v.policy as never);
  assert.match(text, /jump tos_10_3f_v4/);
});

// [port, TOS sent, TOS xt_DSCP's tos_tg writes: (old & ~mask) ^ value]
const CASES: [number, number, number][] = [
  [7001, 0x00, 0x10],
  [7001, 0x41, 0x50],
  [7001, 0xe3, 0xd0],
  [7002, 0x00, 0x08],
  [7002, 0xe3, 0x08],
  [7003, 0x00, 0xb8],
  [7003, 0x03, 0xbb],
  [7003, 0x4d, 0xb9],
  [7004, 0x00, 0x21],
  [7004, 0xe3, 0xc2],
];

for (const [port, sent, want] of CASES) {
  test(`port ${port}, TOS 0x${sent.toString(16)} sent: 0x${want.toString(16)} on both`, async () => {
    const key = `0x${want.toString(16).padStart(2, "0")}`;
    const a = await seen(lab, xt, port, sent);
    const b = await seen(lab, pal, port, sent);
    assert.deepEqual(a, { [key]: 3 }, "iptables TOS/DSCP target");
    assert.deepEqual(b, a, "Palisade's nftables rendering");
  });
}
