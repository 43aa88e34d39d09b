// The iptables target on a real kernel (iptables 1.8, nft backend), always inside this
// test's own network namespaces (`ip netns exec NS ...`), never the root namespace:
//  - every golden policy without xtables-addons features loads with `ipset restore` (its
//    named sets) and `iptables-restore --test`, then for real with `--noflush`, IPv4 and IPv6;
//  - re-applying with the installed state read back adds no second jump, and a smaller
//    policy deletes the chains it no longer has while foreign rules stay untouched;
//  - packets: a default-drop input lets exactly the allowed ping through.
// xtables-addons is not installed on these machines (its kernel modules need DKMS): a
// golden that needs it is skipped here with that reason and covered by its golden text only.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { release } from "node:os";
import { createLab, type Link } from "../support/netns.ts";
import { Policy, type PolicyInput } from "../../src/engine/policy/index.ts";
import { renderIptables, parseInstalled } from "../../src/engine/compile/iptables/index.ts";
import { requiredXtablesModules } from "../../src/engine/compile/support.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";

const lab = createLab();
let client = "";
let server = "";
let link: Link;
before(async () => {
  ({ client, server, link } = await lab.pair());
});
after(() => lab.cleanup());

const GOLDEN = join(import.meta.dirname, "../golden/iptables/policies");

function render(doc: PolicyInput, installed?: { ipv4?: string; ipv6?: string }) {
  const r = renderIptables(Policy.parse(doc), {
    failsafe: { apiAddresses: ["10.250.0.1"], apiPort: 8443 },
    installed: installed && {
      ipv4: installed.ipv4 ? parseInstalled(installed.ipv4) : undefined,
      ipv6: installed.ipv6 ? parseInstalled(installed.ipv6) : undefined,
    },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors, null, 1));
  return r;
}

async function restore(ns: string, fam: "ipv4" | "ipv6", text: string, test = false): Promise<void> {
  const bin = fam === "ipv4" ? "iptables-restore" : "ip6tables-restore";
  await lab.exec(ns, [bin, "--noflush", ...(test ? ["--test"] : [])], { input: text, timeoutMs: 20_000 });
}

async function save(ns: string, fam: "ipv4" | "ipv6", counters = false): Promise<string> {
  const r = await lab.exec(ns, [fam === "ipv4" ? "iptables-save" : "ip6tables-save", ...(counters ? ["-c"] : [])]);
  return r.stdout;
}

for (const name of readdirSync(GOLDEN)
  .filter((f) => f.endsWith(".json"))
  .map((f) => f.replace(/\.json$/, ""))
  .sort()) {
  const doc = JSON.parse(readFileSync(join(GOLDEN, `${name}.json`), "utf8"));
  const xtables = requiredXtablesModules(Policy.parse(doc));
  const skip = xtables.length
    ? `needs xtables-addons (${xtables.join(", ")}), which these machines cannot load`
    : false;
  test(`golden policy ${name} loads with ipset, iptables-restore and ip6tables-restore`, { skip }, async () => {
    const ns = await lab.addNamespace();
    const r = render(doc);
    if (r.ipsets) await lab.exec(ns, ["ipset", "restore", "-exist"], { input: r.ipsets, timeoutMs: 20_000 });
    await restore(ns, "ipv4", r.text, true);
    await restore(ns, "ipv6", r.text6, true);
    await restore(ns, "ipv4", r.text);
    await restore(ns, "ipv6", r.text6);
    const saved = await save(ns, "ipv4");
    // Every rendered rule is in the kernel: compare the -A lines iptables-save prints back.
    for (const line of r.text.split("\n").filter((l) => l.startsWith("-A "))) {
      const chain = line.split(" ")[1]!;
      assert.ok(saved.includes(`:${chain} `), `chain ${chain} exists`);
    }
    const count = (t: string) => t.split("\n").filter((l) => l.startsWith("-A ")).length;
    assert.equal(count(saved), count(r.text) + r.text.split("\n").filter((l) => l.startsWith("-I ")).length);
  });
}

test("re-apply adds no second jump; a smaller policy deletes stale chains and keeps foreign rules", async () => {
  const ns = await lab.addNamespace();
  await lab.exec(ns, ["iptables", "-A", "INPUT", "-s", "192.0.2.99/32", "-j", "DROP"]);
  const big: PolicyInput = {
    chains: {
      input: { hook: "input", rules: [{ action: { type: "jump", chain: "helper" } }] },
      helper: { rules: [{ match: { protocol: "tcp", dport: 22 }, action: "accept" }] },
      out: { hook: "output", rules: [{ action: "accept" }] },
    },
  };
  await restore(ns, "ipv4", render(big).text);
  const again = render(big, { ipv4: await save(ns, "ipv4") });
  assert.ok(!again.text.includes("-I INPUT"), "jump already present");
  await restore(ns, "ipv4", again.text);
  let saved = await save(ns, "ipv4");
  assert.equal(saved.split("\n").filter((l) => l === "-A INPUT -j PALISADE-INPUT").length, 1);

  const small: PolicyInput = { chains: { input: { hook: "input", rules: [{ action: "accept" }] } } };
  const shrink = render(small, { ipv4: saved });
  assert.match(shrink.text, /-D OUTPUT -j PALISADE-OUTPUT/);
  assert.match(shrink.text, /-X PAL-helper/);
  await restore(ns, "ipv4", shrink.text);
  saved = await save(ns, "ipv4");
  assert.ok(!saved.includes("PAL-helper") && !saved.includes("PALISADE-OUTPUT"), saved);
  assert.ok(saved.includes("-A INPUT -s 192.0.2.99/32 -j DROP"), "foreign rule untouched");
  assert.ok(saved.includes(":INPUT ACCEPT"), "builtin policy untouched");
});

test("packets: default-drop input lets only the allowed ping through (IPv4 and IPv6)", async () => {
  const doc = (allowFromClient: boolean): PolicyInput => ({
    chains: {
      input: {
        hook: "input",
        policy: "drop",
        rules: [
          { match: { ctState: ["established", "related"] }, action: "accept" },
          ...(allowFromClient
            ? [
                {
                  comment: "ping v4",
                  match: { saddr: link.a.ip4, icmpType: "echo-request" as const },
                  action: "accept" as const,
                },
                {
                  comment: "ping v6",
                  match: { saddr: link.a.ip6, icmpv6Type: "echo-request" as const },
                  action: "accept" as const,
                },
              ]
            : []),
          { match: { icmpv6Type: ["nd-neighbor-solicit", "nd-neighbor-advert"] }, action: "accept" },
        ],
      },
    },
  });
  const open = render(doc(true));
  await restore(server, "ipv4", open.text);
  await restore(server, "ipv6", open.text6);
  assert.equal((await lab.ping(client, link.b.ip4, { count: 3 })).received, 3);
  assert.equal((await lab.ping(client, link.b.ip6, { count: 3 })).received, 3);
  const closed = render(doc(false), { ipv4: await save(server, "ipv4"), ipv6: await save(server, "ipv6") });
  await restore(server, "ipv4", closed.text);
  await restore(server, "ipv6", closed.text6);
  assert.equal((await lab.ping(client, link.b.ip4, { count: 3, waitS: 0.3 })).received, 0);
  assert.equal((await lab.ping(client, link.b.ip6, { count: 3, waitS: 0.3 })).received, 0);
  const counters = await save(server, "ipv4", true);
  assert.match(counters, /\[3:\d+\] -A PAL-input -m comment --comment "palisade: policy drop" -j DROP/);
});

test("the hardening seed (recent --hitcount 60) renders for this host's kernel and loads with iptables-restore", async () => {
  const source = readFileSync(join(import.meta.dirname, "../fixtures/import/hardening.sh"), "utf8");
  const imported = importPolicy("iptables", source);
  assert.ok(imported.policy, JSON.stringify(imported.errors));
  // The kernel decides, as the agent reports it (driver Capabilities.kernelRelease).
  const capabilities = { kernelRelease: release() };
  const v = validatePolicy(imported.policy, { target: "iptables", capabilities });
  assert.deepEqual(v.errors, []);
  const r = renderIptables(v.policy!, { capabilities });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(r.text, /--hitcount 60 /);
  const ns = await lab.addNamespace();
  await restore(ns, "ipv4", r.text);
  await restore(ns, "ipv6", r.text6);
  assert.match(await save(ns, "ipv4"), /-m recent --update --seconds 1 --hitcount 60 --name synflood/);
});
