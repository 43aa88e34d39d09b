// The physdev match (bridge ports) on a real bridge: two namespaces joined through a bridge
// in a third (br_netfilter on, so bridged IPv4 meets the IP hooks there). The iptables render
// of `physdev` counts each direction by its port, as xt_physdev does; and the reason nftables
// refuses it holds: an inet chain at the same hook sees the bridge as the packet's interface,
// never the port.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { Policy, type PolicyInput } from "../../src/engine/policy/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";

const lab = createLab();
let left = "";
let bridge = "";
let right = "";
let portL = "";
let portR = "";
before(async () => {
  left = await lab.addNamespace();
  bridge = await lab.addNamespace();
  right = await lab.addNamespace();
  const l = await lab.link(left, bridge);
  const r = await lab.link(bridge, right);
  portL = l.b.ifname;
  portR = r.a.ifname;
  await lab.exec(bridge, ["ip", "link", "add", "br0", "type", "bridge"]);
  for (const port of [portL, portR]) {
    await lab.exec(bridge, ["ip", "addr", "flush", "dev", port]);
    await lab.exec(bridge, ["ip", "link", "set", port, "master", "br0"]);
  }
  await lab.exec(bridge, ["ip", "link", "set", "br0", "up"]);
  await lab.exec(bridge, ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"]);
  await lab.exec(left, ["ip", "addr", "add", "10.77.0.1/24", "dev", l.a.ifname]);
  await lab.exec(right, ["ip", "addr", "add", "10.77.0.2/24", "dev", r.b.ifname]);
});
after(() => lab.cleanup());

const udp = { protocol: "udp", dport: 9700 } as const;
const rules = () => [
  { comment: "in L", match: { ...udp, physdev: { iif: portL } }, action: "accept" as const },
  { comment: "in R out L", match: { ...udp, physdev: { iif: portR, oif: portL } }, action: "accept" as const },
  { comment: "not bridged", match: { ...udp, physdev: { isBridged: false } }, action: "accept" as const },
];
const doc = (): PolicyInput => ({
  failsafe: { enabled: false },
  chains: { forward: { hook: "forward", rules: rules() } },
});

async function forwardCounts(): Promise<number[]> {
  const out = (await lab.exec(bridge, ["iptables", "-w", "-vnxL", "PAL-forward"])).stdout;
  return out
    .split("\n")
    .filter((l) => /^\s*\d+\s+\d+\s+ACCEPT/.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

test("iptables: -m physdev counts bridged packets by the port they entered and leave by", async () => {
  const r = renderIptables(Policy.parse(doc()));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(r.text, new RegExp(`-m physdev --physdev-in ${portR} --physdev-out ${portL} -m comment `));
  await lab.exec(bridge, ["iptables-restore", "--noflush"], { input: r.text, timeoutMs: 20_000 });
  await lab.sendUdp(left, "10.77.0.2", 9700, { count: 5 });
  await lab.sendUdp(right, "10.77.0.1", 9700, { count: 3 });
  assert.deepEqual(await forwardCounts(), [5, 3, 0]);
});

test("nftables refuses physdev; an inet chain there sees br0, not the port, as the packet's interface", async () => {
  const refused = renderNft(Policy.parse(doc()));
  assert.ok(!refused.ok);
  assert.deepEqual(
    refused.errors.map((e) => [e.path, e.code]),
    [0, 1, 2].map((i) => [`/chains/forward/rules/${i}/match/physdev`, "unsupported_on_target"]),
  );
  const probe = {
    failsafe: { enabled: false },
    chains: {
      forward: {
        hook: "forward",
        rules: [
          { comment: "port", match: { ...udp, iif: portL }, action: "accept", counter: true },
          { comment: "bridge", match: { ...udp, iif: "br0" }, action: "accept", counter: true },
        ],
      },
    },
  } satisfies PolicyInput;
  const text = renderNft(Policy.parse(probe));
  assert.ok(text.ok);
  await lab.nft(bridge, ["-f", "-"], text.text);
  await lab.sendUdp(left, "10.77.0.2", 9700, { count: 4 });
  const listed = (await lab.nft(bridge, ["list", "chain", "inet", "palisade", "forward"])).stdout;
  const packets = (comment: string) =>
    Number(new RegExp(`counter packets (\\d+) bytes \\d+ accept comment "${comment}"`).exec(listed)?.[1]);
  assert.equal(packets("port"), 0);
  assert.equal(packets("bridge"), 4);
});
