// psd (xt_psd's port-scan detector) on nftables, with real packets between two namespaces.
// The manual's syntax is imported (`-m psd` with xt_psd's defaults written out: weight
// threshold 21, delay 3 s, ports below 1024 weigh 3, the others 1), rendered and loaded.
// A SYN scan (hping3, one SYN per port, 20 ms apart, closed ports answer with a RST) is
// caught exactly where xt_psd catches it: the 7th port below 1024 (weight 21), the 21st
// port from 1024; every later port is dropped. A client that opens many connections to
// two ports is never caught. With a ban list (a dynamic set the action adds the source to,
// checked by the rule before), the scanner loses every port, open ones too, and another
// source keeps them.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { Policy, type PolicyInput } from "../../src/engine/policy/index.ts";
import { compileNft } from "../../src/engine/compile/nft/index.ts";
import { psdId } from "../../src/engine/compile/nft/psd.ts";
import { nftDriver } from "../../src/engine/driver/index.ts";
import { incrementalPlan } from "../../src/agent/kernel/plan.ts";
import { readPalisade } from "../../src/agent/kernel/read.ts";
import { applyPolicy, setElements, sleep } from "../support/nft-lab.ts";

const lab = createLab();
let p: { client: string; server: string; link: Link };
before(async () => {
  p = await lab.pair();
});
after(() => lab.cleanup());

const MANUAL =
  "iptables -A INPUT -p tcp -m psd --psd-weight-threshold 21 --psd-delay-threshold 300 --psd-lo-ports-weight 3 --psd-hi-ports-weight 1 -j DROP";

/** One SYN to each of `count` ports from `first` up (hping3 -p ++N), `gapMs` apart; how many got an answer. */
async function synScan(first: number, count: number, gapMs = 20, source?: string): Promise<number> {
  const argv = ["hping3", "-q", "-S", "-p", `++${first}`, "-c", String(count), "-i", `u${gapMs * 1000}`];
  if (source) argv.push("-a", source);
  argv.push(p.link.b.ip4);
  const r = await lab.exec(p.client, argv, { allowFailure: true, timeoutMs: 10_000 + count * gapMs });
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(r.stdout + r.stderr);
  assert.ok(m, `hping3 printed no summary: ${r.stdout} ${r.stderr}`);
  assert.equal(Number(m[1]), count);
  return Number(m[2]);
}

/**
 * The psd rule's index in the imported input chain: an iptables line is IPv4's, so the chain
 * starts with the rule that lets IPv6 pass.
 */
const AT = 1;

/** The name psd gives rule `index` of chain input's sets (a digest of its match, not its position). */
function idOf(doc: PolicyInput, index = AT): string {
  const policy = Policy.parse(doc);
  return psdId(policy, "input", index, policy.chains.input!.rules[index]!.match!);
}

async function load(doc: PolicyInput): Promise<string> {
  return applyPolicy(lab, p.server, doc);
}

function imported(): PolicyInput {
  const r = importPolicy("iptables", MANUAL);
  assert.deepEqual(r.errors, []);
  const v = validatePolicy(r.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  return r.policy as PolicyInput;
}

test("the manual's -m psd line imports and loads on nftables (no xtables-addons)", async () => {
  const doc = imported();
  const text = await load(doc);
  assert.match(idOf(doc), /^psd_[0-9a-f]{10}$/);
  assert.ok(text.includes(`jump ${idOf(doc)}_v4`), text);
});

test("a SYN scan of 30 ports below 1024: 6 answered (weight 18), the 7th (weight 21) and all later ones dropped", async () => {
  await load(imported());
  const answered = await synScan(20, 30);
  assert.equal(answered, 6);
  const hit = await setElements(lab, p.server, `${idOf(imported())}_hit_v4`);
  assert.deepEqual(
    hit.map((e) => e.key),
    [p.link.a.ip4],
  );
});

test("a SYN scan of 30 ports from 1024: 20 answered (weight 20), the 21st and later dropped", async () => {
  await load(imported());
  assert.equal(await synScan(2000, 30), 20);
});

test("12 ports below 1024 with more than the delay between them are never caught", async () => {
  // Delay 0.2 s, one port every 0.35 s: each sequence ends before the next port.
  const doc = imported();
  const rule = (doc.chains as Record<string, { rules: { match: { xt: { psd: { delayThreshold: number } } } }[] }>)
    .input!.rules[AT]!;
  rule.match.xt.psd.delayThreshold = 20;
  await load(doc);
  assert.equal(await synScan(20, 12, 350), 12);
});

test("as in xt_psd the first port of a sequence never matches: threshold 3, weight 5 per port, 1 of 5 answered", async () => {
  const doc = imported();
  const psd = (doc.chains as Record<string, { rules: { match: { xt: { psd: Record<string, number> } } }[] }>).input!
    .rules[AT]!.match.xt.psd;
  Object.assign(psd, { weightThreshold: 3, loPortsWeight: 5 });
  await load(doc);
  assert.equal(await synScan(20, 5), 1);
});

test("a client opening 40 connections to two ports is not caught", async () => {
  await load(imported());
  const server = lab.background(p.server, [
    "python3",
    "-c",
    "import socket,select\nss=[]\nfor port in (80,443):\n s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('0.0.0.0',port)); s.listen(64); ss.append(s)\nprint('ready',flush=True)\nwhile True:\n r,_,_=select.select(ss,[],[])\n for s in r:\n  c,_=s.accept(); c.close()\n",
  ]);
  try {
    for (let i = 0; i < 50 && !server.output().includes("ready"); i++) await sleep(100);
    let ok = 0;
    for (let i = 0; i < 40; i++) if (await lab.tcpConnect(p.client, p.link.b.ip4, i % 2 ? 443 : 80)) ok++;
    assert.equal(ok, 40);
    assert.deepEqual(await setElements(lab, p.server, `${idOf(imported())}_hit_v4`), []);
    // What it touched: two (source . port) elements at most, both this client's.
    const listed = (await lab.nft(p.server, ["list", "set", "inet", "palisade", `${idOf(imported())}_ports_v4`]))
      .stdout;
    const ports = [...listed.matchAll(/(\d+\.\d+\.\d+\.\d+) \. (\d+)/g)].map((m) => `${m[1]}:${m[2]}`);
    assert.ok(ports.length >= 1 && ports.length <= 2, listed);
    assert.ok(
      ports.every((x) => x === `${p.link.a.ip4}:80` || x === `${p.link.a.ip4}:443`),
      listed,
    );
  } finally {
    await server.stop();
  }
});

test("ban list: the action adds the scanner to a timeout set; it then loses an open port another source keeps", async () => {
  const doc: PolicyInput = {
    sets: { scanners: { type: "ipv4_addr", dynamic: true, timeoutSeconds: 60 } },
    chains: {
      input: {
        hook: "input",
        rules: [
          { comment: "banned scanners", match: { saddr: "@scanners" }, action: "drop" },
          {
            comment: "psd bans",
            match: { protocol: "tcp", xt: { psd: {} } },
            action: { type: "setUpdate", op: "add", set: "scanners" },
          },
        ],
      },
    },
  };
  await load(doc);
  const server = lab.background(p.server, [
    "python3",
    "-c",
    "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('0.0.0.0',22)); s.listen(64)\nprint('ready',flush=True)\nwhile True:\n c,_=s.accept(); c.close()\n",
  ]);
  try {
    for (let i = 0; i < 50 && !server.output().includes("ready"); i++) await sleep(100);
    const other = "10.250.0.7";
    await lab.exec(p.client, ["ip", "addr", "add", `${other}/32`, "dev", p.link.a.ifname]);
    await lab.exec(p.server, ["ip", "route", "add", `${other}/32`, "dev", p.link.b.ifname]);
    const fromOther = async () =>
      (
        await lab.exec(p.client, ["nc", "-z", "-n", "-w", "1", "-s", other, p.link.b.ip4, "22"], {
          allowFailure: true,
        })
      ).code === 0;
    assert.ok(await fromOther(), "port 22 answers before the scan");
    // 30 ports from 1000 up: 1000..1023 weigh 3, so weight 21 is reached at the 7th. The
    // action only adds to the set, so the 7th SYN itself goes on (answered); from the 8th on
    // the ban rule drops everything.
    assert.equal(await synScan(1000, 30), 7);
    const banned = await setElements(lab, p.server, "scanners");
    assert.deepEqual(
      banned.map((e) => e.key),
      [p.link.a.ip4],
    );
    assert.equal(await lab.tcpConnect(p.client, p.link.b.ip4, 22), false, "the scanner lost port 22");
    assert.ok(await fromOther(), "another source keeps port 22");
  } finally {
    await server.stop();
  }
});

test("a rule inserted above keeps the psd sets' names, and an agent-style apply keeps the detected scanner", async () => {
  // The agent applies incrementally (src/agent/kernel/plan.ts): dynamic sets keep their
  // elements when the new ruleset declares them under the same name. Named by position,
  // the rule's sets were renamed by the insert (psd_input_0 -> psd_input_1) and the
  // scanner's state was lost.
  const d = nftDriver({ netns: p.server });
  const apply = async (doc: PolicyInput) => {
    const r = compileNft(Policy.parse(doc));
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    await d.apply(incrementalPlan(r.text, await readPalisade(d), r.tables));
    return r.text;
  };
  await lab.nft(p.server, ["flush", "ruleset"]);
  // A 30 s delay: the state outlives the re-apply whatever the machine's speed.
  const slow = () => {
    const doc = imported();
    const psd = (doc.chains as Record<string, { rules: { match: { xt: { psd: Record<string, number> } } }[] }>).input!
      .rules[AT]!.match.xt.psd;
    psd.delayThreshold = 3000;
    return doc;
  };
  const before = slow();
  await apply(before);
  assert.equal(await synScan(20, 30), 6);
  const name = `${idOf(before)}_hit_v4`;
  assert.deepEqual(
    (await setElements(lab, p.server, name)).map((e) => e.key),
    [p.link.a.ip4],
  );
  const after = slow();
  const input = (after.chains as Record<string, { rules: unknown[] }>).input!;
  input.rules.unshift({ comment: "inserted above", match: { protocol: "udp", dport: 9 }, action: "accept" });
  assert.equal(idOf(after, AT + 1), idOf(before));
  const text = await apply(after);
  assert.ok(text.includes(`jump ${idOf(before)}_v4`), text);
  // Still detected: the next new port is dropped at once (a fresh sequence would answer 6).
  assert.deepEqual(
    (await setElements(lab, p.server, name)).map((e) => e.key),
    [p.link.a.ip4],
  );
  assert.equal(await synScan(200, 3), 0);
});
