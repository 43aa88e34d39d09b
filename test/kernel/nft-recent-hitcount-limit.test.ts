// The ICMPFLOOD template (--set; --update --seconds 1 --hitcount 6 --rttl with -m limit
// -j NFLOG; the same --update -j DROP) side by side on real kernels, in three pairs of
// namespaces: the lines as written loaded with iptables-restore (recent, then limit), the
// same lines with -m limit moved before -m recent (the order the policy evaluates them in:
// stateful matches go last, limit before recent, on both targets; the import warns about
// the move) loaded with iptables-restore, and Palisade's nftables rendering of the import.
// One source sends 10 echo requests 50 ms apart (a dropped one waits 100 ms for its reply):
// the 6th within a second matches and is dropped, with every later one. Counted: the
// packets the log rule logged and the packets the DROP rule dropped, per ruleset.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { applyPolicy, ruleCounter, sleep } from "../support/nft-lab.ts";

const lab = createLab();
after(() => lab.cleanup());

const HEAD = [":INPUT ACCEPT [0:0]", ":ICMPFLOOD - [0:0]", "-A INPUT -p icmp -m icmp --icmp-type 8 -j ICMPFLOOD"];
const SET = "-A ICMPFLOOD -m recent --set --name ICMP --mask 255.255.255.255 --rsource";
const CHECK = "-m recent --update --seconds 1 --hitcount 6 --rttl --name ICMP --mask 255.255.255.255 --rsource";
const template = (limit: string) => [
  ...HEAD,
  SET,
  `-A ICMPFLOOD ${CHECK}${limit} -j NFLOG --nflog-group 0 --nflog-prefix "iptables[ICMP-flood]: "`,
  `-A ICMPFLOOD ${CHECK} -j DROP`,
  "-A ICMPFLOOD -j ACCEPT",
];
/** The log rule with its -m limit before -m recent, as the policy (and its iptables rendering) orders them. */
const limitFirst = (lines: string[]) =>
  lines.map((l) => {
    const m = / -m limit .*?(?= -j )/.exec(l);
    return m ? l.replace(m[0], "").replace("-A ICMPFLOOD ", `-A ICMPFLOOD${m[0]} `) : l;
  });

type Counts = { logged: number; dropped: number; answered: number };

async function xtCounts(ns: string): Promise<Omit<Counts, "answered">> {
  const saved = (await lab.exec(ns, ["iptables-save", "-c"])).stdout;
  const count = (re: RegExp) => {
    const line = saved.split("\n").find((l) => re.test(l));
    assert.ok(line, `${re} in\n${saved}`);
    return Number(/^\[(\d+):/.exec(line)![1]);
  };
  return { logged: count(/-A ICMPFLOOD .*-j NFLOG/), dropped: count(/-A ICMPFLOOD .*-j DROP/) };
}

/** Load `lines` three ways, send `trains` trains of 10 pings (a pause of 2.5 s between), count. */
async function sideBySide(lines: string[], trains = 1) {
  const save = (l: string[]) => ["*filter", ...l, "COMMIT", ""].join("\n");
  const orig = await lab.pair();
  const moved = await lab.pair();
  const pal = await lab.pair();
  await lab.exec(orig.server, ["iptables-restore"], { input: save(lines) });
  await lab.exec(moved.server, ["iptables-restore"], { input: save(limitFirst(lines)) });
  const imported = importPolicy("iptables-save", save(lines), { family: "ipv4" });
  assert.deepEqual(imported.errors, []);
  const doc = imported.policy as { chains: Record<string, { rules: { counter?: boolean }[] }> };
  // Count what the log rule logs and the DROP rule drops (the counter follows every match).
  doc.chains.ICMPFLOOD!.rules[1]!.counter = true;
  doc.chains.ICMPFLOOD!.rules[2]!.counter = true;
  const v = validatePolicy(doc, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, pal.server, v.policy as never);
  const answered = { orig: 0, moved: 0, pal: 0 };
  for (let t = 0; t < trains; t++) {
    if (t > 0) await sleep(2500); // every stamp, slot and block older than the 1 s window
    for (const [k, p] of [
      ["orig", orig],
      ["moved", moved],
      ["pal", pal],
    ] as const) {
      const r = await lab.ping(p.client, p.link.b.ip4, { count: 10, intervalS: 0.05, waitS: 0.1 });
      assert.equal(r.sent, 10);
      answered[k] += r.received;
    }
  }
  const palCounts = {
    logged: (await ruleCounter(lab, pal.server, "ICMPFLOOD", "ICMPFLOOD rule 1")).packets,
    dropped: (await ruleCounter(lab, pal.server, "ICMPFLOOD", "ICMPFLOOD rule 2")).packets,
  };
  return {
    text,
    orig: { ...(await xtCounts(orig.server)), answered: answered.orig } as Counts,
    moved: { ...(await xtCounts(moved.server)), answered: answered.moved } as Counts,
    pal: { ...palCounts, answered: answered.pal } as Counts,
  };
}

test("the template as written (limit 1/sec, burst 1), two trains: 5 of 10 answered and 5 dropped per train on all three; the log rule logs as the policy orders it", async () => {
  const r = await sideBySide(template(" -m limit --limit 1/sec --limit-burst 1"), 2);
  assert.equal((r.text.match(/jump recent_ICMP_hc6_1s_v4/g) ?? []).length, 1, r.text);
  assert.deepEqual(r.orig, { logged: 2, dropped: 10, answered: 10 }, "recent, then limit: the 6th ping of each train");
  assert.deepEqual(r.moved, { logged: 0, dropped: 10, answered: 10 }, "limit first: the 1st ping takes each token");
  assert.deepEqual(r.pal, r.moved);
});

test("burst 7: the limit spends its tokens where the policy evaluates it (limit first: 2 logged; as written: 5)", async () => {
  const r = await sideBySide(template(" -m limit --limit 1/sec --limit-burst 7"));
  assert.deepEqual(r.orig, { logged: 5, dropped: 5, answered: 5 });
  assert.deepEqual(r.moved, { logged: 2, dropped: 5, answered: 5 });
  assert.deepEqual(r.pal, r.moved);
});

test("two --update rules on one list without a limit (log, then DROP): each packet counted once, the 6th dropped on both (was the 3rd on nftables)", async () => {
  const r = await sideBySide(template(""));
  assert.deepEqual(r.orig, { logged: 5, dropped: 5, answered: 5 });
  assert.deepEqual(r.moved, r.orig);
  assert.deepEqual(r.pal, r.orig);
});
