// lscan --stealth on nftables, with real packets: the manual's line imported, rendered and
// loaded. FIN, NULL and XMAS probes to a closed port belong to no connection (conntrack
// calls them invalid) and are dropped; without the policy the same probes are answered
// with a RST, and with it a SYN still is.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import type { PolicyInput } from "../../src/engine/policy/index.ts";
import { applyPolicy } from "../support/nft-lab.ts";

const lab = createLab();
let p: { client: string; server: string; link: Link };
before(async () => {
  p = await lab.pair();
});
after(() => lab.cleanup());

const CLOSED = 7070;
const PROBES: Record<string, string> = { FIN: "F", NULL: "", XMAS: "FPU" };
const answered = async (flags: string) =>
  (await lab.tcpFlags(p.client, p.link.b.ip4, CLOSED, flags, { count: 5, intervalUs: 20_000 })).received;

test("without the policy a closed port answers FIN, NULL and XMAS probes", async () => {
  for (const [name, flags] of Object.entries(PROBES)) assert.equal(await answered(flags), 5, name);
});

test("-m lscan --stealth -j DROP, imported: the probes are dropped, SYNs still answered", async () => {
  const r = importPolicy("iptables", "iptables -A INPUT -p tcp -m lscan --stealth -j DROP");
  assert.deepEqual(r.errors, []);
  const v = validatePolicy(r.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, p.server, r.policy as PolicyInput);
  assert.match(text, /ct state \{ invalid, untracked \}/);
  for (const [name, flags] of Object.entries(PROBES)) assert.equal(await answered(flags), 0, name);
  assert.equal(await answered("S"), 5);
});

test("--synscan, --cnscan, --grscan are refused on nftables with the reason", () => {
  const r = importPolicy("iptables", "iptables -A INPUT -p tcp -m lscan --synscan -j DROP");
  const v = validatePolicy(r.policy, { target: "nftables" });
  assert.ok(!v.ok);
  assert.ok(
    v.errors.some((e) => e.code === "unsupported_on_target" && /state machine/.test(e.message)),
    JSON.stringify(v.errors),
  );
});
