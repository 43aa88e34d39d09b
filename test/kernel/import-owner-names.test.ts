// -m owner with user and group names, proved with packets: one iptables-save text is loaded
// with iptables-restore (the reference), imported and rendered for nftables, and rendered
// back for iptables-restore, each in a namespace of its own. Local senders running as
// www-data and as nobody send UDP to loopback; the per-rule counts must agree and be the ones
// the rules call for (a name matches as its number does). A name the host lacks is refused
// by both loaders, and the nft refusal names the rule and the user.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";
import { check } from "../../src/engine/driver/apply.ts";
import { NftError } from "../../src/engine/driver/errors.ts";
import { Policy } from "../../src/engine/policy/index.ts";

const lab: NetnsLab = createLab();
const ns = { orig: "", nft: "", ipt: "" };
before(async () => {
  for (const k of ["orig", "nft", "ipt"] as const) ns[k] = await lab.addNamespace();
});
after(() => lab.cleanup());

const SAVE = [
  "*filter",
  ":OUTPUT ACCEPT [0:0]",
  "-A OUTPUT -p udp --dport 7101 -m owner --uid-owner www-data",
  "-A OUTPUT -p udp --dport 7102 -m owner --uid-owner 33",
  "-A OUTPUT -p udp --dport 7103 -m owner ! --uid-owner www-data",
  "-A OUTPUT -p udp --dport 7104 -m owner --gid-owner www-data",
  "-A OUTPUT -p udp --dport 7105 -m owner --uid-owner 30-40",
  "-A OUTPUT -p udp --dport 7106 -m owner ! --gid-owner nogroup",
  "COMMIT",
  "",
].join("\n");
const PORTS = [7101, 7102, 7103, 7104, 7105, 7106];

const SEND = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in sys.argv[2:]:
    for _ in range(int(sys.argv[1])):
        s.sendto(b"x", ("127.0.0.1", int(port)))
`;

/** Send `count` datagrams to each port from a process running as `user` and `group`, no other groups. */
async function sendAs(where: string, user: string, group: string, count: number): Promise<void> {
  const argv = ["setpriv", `--reuid=${user}`, `--regid=${group}`, "--clear-groups"];
  await lab.exec(where, [...argv, "/usr/bin/python3", "-c", SEND, String(count), ...PORTS.map(String)]);
}

/** Packet counts of the target-less rules (iptables-save -c), in order. */
async function iptCounts(where: string): Promise<number[]> {
  const r = await lab.exec(where, ["iptables-save", "-c", "-t", "filter"]);
  return r.stdout
    .split("\n")
    .filter((l) => / -A (OUTPUT|PAL-output) -p udp/.test(l) && !/ -j /.test(l))
    .map((l) => Number(/^\[(\d+):/.exec(l)![1]));
}

async function nftCounts(where: string): Promise<number[]> {
  const r = await lab.nft(where, ["-j", "list", "counters"]);
  const objs = (JSON.parse(r.stdout) as { nftables: Array<{ counter?: { name: string; packets: number } }> }).nftables;
  const by = new Map(objs.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets] as const] : [])));
  return PORTS.map((_, i) => by.get(`output_count_${i + 1}`) ?? -1);
}

test("owner names match as their ids: iptables-restore, the nftables render and the iptables render agree", async () => {
  const imported = importPolicy("iptables-save", SAVE);
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.deepEqual(v.errors, []);
  const nft = renderNft(v.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  assert.match(nft.text, /meta skuid "www-data"/);
  const ipt = renderIptables(v.policy!);
  assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
  await lab.exec(ns.orig, ["iptables-restore"], { input: SAVE });
  await lab.nft(ns.nft, ["-f", "-"], nft.text);
  await lab.exec(ns.ipt, ["iptables-restore", "--noflush"], { input: ipt.text });
  for (const where of [ns.orig, ns.nft, ns.ipt]) {
    await sendAs(where, "www-data", "www-data", 2);
    await sendAs(where, "nobody", "nogroup", 3);
  }
  // www-data is uid 33, gid 33; nobody is 65534 in group nogroup.
  const want = [2, 2, 3, 2, 2, 2];
  assert.deepEqual(await iptCounts(ns.orig), want, "iptables-restore of the original");
  assert.deepEqual(await nftCounts(ns.nft), want, "the nftables render");
  assert.deepEqual(await iptCounts(ns.ipt), want, "the iptables render");
});

test("a name this host lacks: nft -c names the rule and the user; iptables-restore refuses the render too", async () => {
  const policy = Policy.parse({
    chains: {
      output: {
        table: "filter",
        hook: "output",
        rules: [
          { match: { skuid: "www-data" }, action: "accept" },
          { match: { skgid: { not: "palisade-nosuchgroup" } }, action: "accept", comment: "no such group" },
        ],
      },
    },
  });
  const nft = renderNft(policy);
  assert.ok(nft.ok);
  const e = await check(nft.text, { netns: ns.nft }).then(
    () => undefined,
    (x: unknown) => x,
  );
  assert.ok(e instanceof NftError, String(e));
  assert.equal(e.code, "nft_rejected");
  assert.equal(e.kernelMessage, "Group does not exist");
  assert.equal(
    e.message,
    'nft refused the ruleset: rule "no such group" of chain output matches group palisade-nosuchgroup by name ' +
      "(skgid), and this host has no group palisade-nosuchgroup; nft, like iptables, looks the name up on the host " +
      "that loads the rule: create the group there or match its numeric id",
  );
  const ipt = renderIptables(policy);
  assert.ok(ipt.ok);
  const r = await lab.exec(ns.ipt, ["iptables-restore", "--noflush", "--test"], {
    input: ipt.text,
    allowFailure: true,
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /owner: Bad value for "--gid-owner" option: "palisade-nosuchgroup"/);
});
