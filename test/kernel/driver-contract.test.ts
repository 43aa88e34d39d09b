// The in-memory FakeDriver (test/support/fake-driver.ts) must behave like the real nft
// driver for every operation it imitates: the same steps run against both, the real one
// in a throwaway namespace, and what each step did (ok, or the error code) and what the
// tables read back afterwards must be equal. A difference here means a unit test using
// the fake proves something the kernel does not do.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { FakeDriver } from "../support/fake-driver.ts";
import { isNftError, nftDriver, type Driver, type RulesetState } from "../../src/engine/driver/index.ts";
import { carryReplace, serialize } from "../../src/engine/nft/index.ts";
import { incrementalPlan } from "../../src/agent/kernel/plan.ts";
import { readPalisade } from "../../src/agent/kernel/read.ts";
import { brokenText, fixtureDefinition, fixtureText } from "../support/agent-rulesets.ts";

const lab = createLab();
let ns = "";
/** Whether the kernel has the ftp and tftp conntrack helpers (the ct helper steps need them). */
let helpers = false;
before(async () => {
  ns = await lab.addNamespace();
  const probe = `table inet palisade_probe {\n ct helper a { type "ftp" protocol tcp; l3proto inet; }\n ct helper b { type "tftp" protocol udp; l3proto inet; }\n}\n`;
  helpers = (await lab.nft(ns, ["-f", "-"], probe, { allowFailure: true })).code === 0;
  if (helpers) await lab.nft(ns, ["delete", "table", "inet", "palisade_probe"]);
});
after(() => lab.cleanup());

const LAN = "10.9.0.0/24";
const T = "inet palisade";

/** What both drivers must agree on (nft-only details such as handles and expiry left out). */
function view(st: RulesetState) {
  const by = <X>(xs: X[], k: (x: X) => string) => [...xs].sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0));
  return {
    tables: by(st.tables, (t) => t.family + t.name).map((t) => `${t.family} ${t.name}`),
    chains: by(st.chains, (c) => c.table + c.name).map((c) => [c.table, c.name, c.type, c.hook, c.priority, c.policy]),
    rules: st.rules.map((r) => [r.table, r.chain, r.comment ?? ""]),
    sets: by(st.sets, (s) => s.table + s.name).map((s) => ({
      name: `${s.kind} ${s.table} ${s.name}`,
      type: s.type,
      map: s.map,
      flags: [...s.flags].sort(),
      size: s.size,
      counter: s.counter,
      elements: by(s.elements, (e) => e.key).map((e) => [e.key, e.value, e.packets, e.bytes, e.timeout !== undefined]),
    })),
    counters: by(st.counters, (c) => c.table + c.name).map((c) => [c.table, c.name, c.packets, c.bytes]),
    quotas: by(st.quotas, (q) => q.table + q.name).map((q) => [q.table, q.name, q.mode, q.bytes, q.used]),
    ctHelpers: by(st.ctHelpers, (h) => h.table + h.name).map((h) => [h.table, h.name, h.type, h.protocol]),
  };
}

type Outcome = string;
async function outcome(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    const r = await fn();
    return r === undefined ? "ok" : `ok ${JSON.stringify(r)}`;
  } catch (e) {
    if (isNftError(e)) return `error ${e.code}`;
    throw e;
  }
}

/** The steps, each followed by a full read of Palisade's tables. */
async function script(d: Driver): Promise<{ step: string; outcome: Outcome; state: ReturnType<typeof view> }[]> {
  const log: { step: string; outcome: Outcome; state: ReturnType<typeof view> }[] = [];
  const step = async (name: string, fn: () => Promise<unknown>) =>
    log.push({ step: name, outcome: await outcome(fn), state: view(await readPalisade(d)) });
  await step("first apply: the compiler's full replace", () => d.apply(fixtureText({ lan: LAN })));
  await step("elements with counter values into a dynamic set", () =>
    d.apply(
      `add element ${T} acct_lan_src { 10.9.0.1 counter packets 3 bytes 300, 10.9.0.2 counter packets 1 bytes 100 }\n`,
    ),
  );
  await step("a counter a rule uses cannot be deleted", () => d.apply(`delete counter ${T} udp_seen\n`));
  await step("a new counter with values", () => d.apply(`add counter ${T} extra { packets 9 bytes 900 ; }\n`));
  await step("re-adding an existing counter keeps its value", () =>
    d.apply(`add counter ${T} extra { packets 1 bytes 1 ; }\n`),
  );
  await step("the agent's incremental plan with a changed rule set and quota", async () =>
    d.apply(
      incrementalPlan(
        fixtureText({ lan: LAN, extra: ["tcp dport 9999 drop"], quotaBytes: 20_000_000 }),
        await readPalisade(d),
      ),
    ),
  );
  if (helpers) {
    const FTP = { type: "ftp", protocol: "tcp", dport: 21 } as const;
    const TFTP = { type: "tftp", protocol: "udp", dport: 69 } as const;
    await step("the incremental plan adds ct helpers and the rules that set them", async () =>
      d.apply(incrementalPlan(fixtureText({ lan: LAN, ctHelpers: [FTP, TFTP] }), await readPalisade(d))),
    );
    await step("a ct helper a rule uses cannot be deleted", () => d.apply(`delete ct helper ${T} helper_ftp_tcp\n`));
    await step("a rule cannot set a ct helper the table does not have", () =>
      d.apply(`add rule ${T} input tcp dport 2121 ct helper set "helper_nosuch_tcp"\n`),
    );
    await step("the incremental plan deletes the ct helper the next version drops", async () =>
      d.apply(incrementalPlan(fixtureText({ lan: LAN, ctHelpers: [TFTP] }), await readPalisade(d))),
    );
  }
  await step("the incremental plan cannot move a base chain's priority", async () =>
    d.apply(incrementalPlan(fixtureText({ lan: LAN, priority: 10 }), await readPalisade(d))),
  );
  await step("carryReplace can, keeping the values", async () =>
    d.apply(serialize(carryReplace([fixtureDefinition({ lan: LAN, priority: 10 })], await readPalisade(d)))),
  );
  await step("check refuses a jump to a missing chain", () => d.check(brokenText()));
  await step("check of a valid text changes nothing", () => d.check(fixtureText({ lan: LAN })));
  await step("a set at its size refuses elements", () =>
    d.apply(
      `add set ${T} tiny { type ipv4_addr ; size 2 ; }\nadd element ${T} tiny { 192.0.2.1, 192.0.2.2, 192.0.2.3 }\n`,
    ),
  );
  await step("a set below its size takes them", () =>
    d.apply(`add set ${T} tiny { type ipv4_addr ; size 2 ; }\nadd element ${T} tiny { 192.0.2.1, 192.0.2.2 }\n`),
  );
  await step("a set cannot change its type in place", () =>
    d.apply(`add set ${T} tiny { type ipv6_addr ; size 2 ; }\n`),
  );
  await step("deleting a table that does not exist fails the whole transaction", () =>
    d.apply(`add table inet palisade_x\ndelete table inet palisade_y\n`),
  );
  await step("a foreign table is refused before nft", () => d.apply(`add table inet other\n`));
  await step("reset counter returns the values and zeroes", () => d.resetCounter("inet", "palisade", "udp_seen"));
  await step("reset quota", () => d.resetQuota("inet", "palisade", "q1"));
  await step("readSet", () =>
    d
      .readSet("inet", "palisade", "acct_lan_src")
      .then(
        (s) => view({ tables: [], chains: [], rules: [], sets: [s], counters: [], quotas: [], ctHelpers: [] }).sets,
      ),
  );
  await step("readWithoutElements: every Palisade table's sets, none of their elements", async () => {
    const st = await d.readWithoutElements();
    return [view(st), (await d.readTable("inet", "palisade")).sets.some((x) => x.elements.length > 0)];
  });
  await step("readCounters / readQuotas", async () => [
    (await d.readCounters("inet", "palisade")).length,
    (await d.readQuotas("inet", "palisade")).length,
  ]);
  await step("a second table", () =>
    d.apply(`add table ip palisade_tee\nadd counter ip palisade_tee c { packets 1 bytes 2 ; }\n`),
  );
  await step("listTables", () => d.listTables());
  await step("readWithoutElements, two tables: each with its objects and counter values", async () =>
    view(await d.readWithoutElements()),
  );
  const snap = await d.snapshot();
  await step("a change after the snapshot", () =>
    d.apply(`delete table ip palisade_tee\nadd element ${T} acct_lan_src { 10.9.0.3 counter packets 5 bytes 500 }\n`),
  );
  await step("restore puts the snapshot back", () => d.restore(snap));
  await step("everything removed", () => d.apply(`delete table ${T}\ndelete table ip palisade_tee\n`));
  return log;
}

test("FakeDriver and nftDriver agree on every step", async () => {
  const real = await script(nftDriver({ netns: ns }));
  const fake = await script(new FakeDriver());
  assert.equal(fake.length, real.length);
  for (let i = 0; i < real.length; i++) {
    assert.deepEqual(
      { step: fake[i]!.step, outcome: fake[i]!.outcome },
      { step: real[i]!.step, outcome: real[i]!.outcome },
      `outcome of step ${i}: ${real[i]!.step}`,
    );
    assert.deepEqual(fake[i]!.state, real[i]!.state, `state after step ${i}: ${real[i]!.step}`);
  }
  // The script is not vacuous: it saw values carried, refusals, and a restore.
  assert.match(real.map((s) => s.outcome).join(" "), /error nft_rejected.*error set_full.*error foreign_table/s);
  assert.ok(real.some((s) => JSON.stringify(s.state.counters).includes(`"extra",9,900`)));
  // The table read without elements had sets with elements at that point.
  assert.match(real.find((s) => s.step.startsWith("readWithoutElements"))?.outcome ?? "", /,true\]$/);
  if (helpers)
    assert.ok(
      real.some((s) => s.state.ctHelpers.length === 2) &&
        real.some((s) => JSON.stringify(s.state.ctHelpers) === `[["palisade","helper_tftp_udp","tftp","udp"]]`),
    );
});
