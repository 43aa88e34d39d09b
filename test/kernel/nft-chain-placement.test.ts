// Every base chain the schema allows loads into a real kernel: one policy per
// table x hook the validator accepts (type filter, route and nat in table inet palisade),
// each with a TEE rule per IP family so the ip/ip6 clone tables get their chain on the
// same hook too. nft 1.0.6 accepts the priority names dstnat/srcnat only on prerouting/
// postrouting, so a nat chain on output or input must be placed by number. Combinations
// the validator refuses are checked to be refused, so the loop really covers the schema.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy, validatePolicy, renderNft, type Policy } from "../../src/engine/index.ts";
import { CHAIN_TABLES, HOOKS } from "../../src/engine/policy/index.ts";
import { createLab } from "../support/netns.ts";

const lab = createLab();
let ns = "";
before(async () => {
  ns = await lab.addNamespace();
});
after(() => lab.cleanup());

const doc = (table: string, hook: string) => ({
  chains: {
    c: {
      table,
      hook,
      rules: [
        { match: { protocol: "tcp", dport: 80 }, action: "accept", counter: true },
        { match: { protocol: "udp", dport: 9 }, action: { type: "tee", gateway: "192.0.2.1" } },
        { match: { protocol: "udp", dport: 9 }, action: { type: "tee", gateway: "2001:db8::1" } },
      ],
    },
  },
});

for (const table of CHAIN_TABLES) {
  for (const hook of HOOKS) {
    test(`table ${table} hook ${hook}: refused by the validator or loads with nft`, async () => {
      const v = validatePolicy(doc(table, hook), { target: "nftables" });
      if (!v.ok) {
        // Only the table/hook combination itself may be the reason.
        assert.deepEqual(
          v.errors.map((e) => [e.code, e.path]),
          [["invalid_hook_for_table", "/chains/c/hook"]],
          JSON.stringify(v.errors),
        );
        return;
      }
      const r = renderNft(v.policy as Policy);
      assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
      const families = new Set([...r.text.matchAll(/^add chain (\S+) /gm)].map((m) => m[1]));
      assert.deepEqual([...families].sort(), ["inet", "ip", "ip6"]);
      const check = await lab.nft(ns, ["-c", "-f", "-"], r.text, { allowFailure: true });
      assert.equal(check.code, 0, `nft -c refused ${table}/${hook}: ${check.stderr}\n${r.text}`);
      await lab.nft(ns, ["-f", "-"], r.text);
      const listed = JSON.parse((await lab.nft(ns, ["-j", "list", "chain", "inet", "palisade", "c"])).stdout) as {
        nftables: { chain?: { hook?: string; type?: string } }[];
      };
      const chain = listed.nftables.find((x) => x.chain)?.chain;
      assert.equal(chain?.hook, hook);
    });
  }
}

test("the loop above loaded every table/hook pair the validator allows (18 of 30: filter 3, nat 4, mangle 5, raw 2, rawpost 1, security 3)", () => {
  const allowed = CHAIN_TABLES.flatMap((t) =>
    HOOKS.filter((h) => validatePolicy(doc(t, h), { target: "nftables" }).ok),
  );
  assert.equal(allowed.length, 18);
});

test("an imported nat OUTPUT DNAT (iptables-save) renders and loads", async () => {
  const save = [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":INPUT ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
    "-A OUTPUT -d 10.0.0.1/32 -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2",
    "COMMIT",
    "",
  ].join("\n");
  const imported = importPolicy("iptables-save", save);
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const r = renderNft(v.policy as Policy);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(r.text, /hook output priority -100 ;/);
  const check = await lab.nft(ns, ["-c", "-f", "-"], r.text, { allowFailure: true });
  assert.equal(check.code, 0, `nft -c: ${check.stderr}\n${r.text}`);
});
