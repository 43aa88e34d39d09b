// A kernel without a feature's module refuses a rule using it with a bare "No such file or
// directory" (nft 1.0.6, kernel without CONFIG_NFT_QUEUE: `Error: Could not process rule: No
// such file or directory`, the caret under `queue`). The driver's error names the feature and
// the fix instead (kernel_feature_missing, feature "queue"), for nft -c and the atomic apply
// of Palisade's own render, and so does the agent's safe apply result; nothing is applied.
// On a kernel that has nft queue there is nothing to refuse: the tests skip, saying so.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { apply, check, listPalisadeTables, NftError, nftDriver } from "../../src/engine/driver/index.ts";
import { compileNft, validatePolicy } from "../../src/engine/index.ts";
import { Applier } from "../../src/agent/apply.ts";
import { memoryLog } from "../../src/runtime/log.ts";

const lab = createLab();
let ns = "";
let hasQueue = false;
const NO_QUEUE = "this kernel has nft queue (CONFIG_NFT_QUEUE): it accepts the rule, so there is nothing to refuse";

function render(withQueue: boolean): string {
  const rules: unknown[] = [{ match: { protocol: "tcp", dport: [22] }, action: "accept" }];
  if (withQueue)
    rules.push({ match: { protocol: "udp", dport: [7201] }, action: { type: "queue", num: 3, bypass: true } });
  const v = validatePolicy({ chains: { input: { hook: "input", policy: "accept", rules } } }, { target: "nftables" });
  assert.ok(v.ok && v.policy, JSON.stringify(v.errors));
  const r = compileNft(v.policy);
  assert.ok(r.ok, JSON.stringify(r));
  return r.text;
}

before(async () => {
  ns = await lab.addNamespace();
  // Independent of the driver: does this kernel take a queue statement at all?
  const probe =
    "table inet t {\nchain fw { type filter hook forward priority 0 ; meta l4proto udp queue num 3 ; }\n}\n";
  hasQueue = (await lab.nft(ns, ["-c", "-f", "-"], probe, { allowFailure: true })).code === 0;
});
after(() => lab.cleanup());

const refusal = async (p: Promise<unknown>): Promise<NftError> => {
  const e = await p.then(
    () => assert.fail("the kernel took a queue rule"),
    (err: unknown) => err,
  );
  assert.ok(e instanceof NftError, String(e));
  return e;
};

test("nft -c and the atomic apply of a queue rule name the missing feature and the fix", async (t) => {
  if (hasQueue) return t.skip(NO_QUEUE);
  const text = render(true);
  for (const run of [() => check(text, { netns: ns }), () => apply(text, { netns: ns })]) {
    const e = await refusal(run());
    assert.equal(e.code, "kernel_feature_missing");
    assert.equal(e.feature, "queue");
    assert.match(e.kernelMessage ?? "", /No such file or directory/);
    assert.match(
      e.message,
      /^the kernel has no nftables queue support \(NFQUEUE: the nft_queue module, CONFIG_NFT_QUEUE\)/,
    );
    assert.match(e.message, /refused the rule at line \d+ \(.*queue num 3 bypass/);
    assert.match(e.message, /modprobe nft_queue/);
    assert.equal(e.toJSON().feature, "queue");
  }
  assert.deepEqual(await listPalisadeTables({ netns: ns }), []);
});

test("a refusal at another statement is not put on a feature", async (t) => {
  if (hasQueue) return t.skip(NO_QUEUE);
  // Also ENOENT: a jump to a chain that does not exist.
  const e = await refusal(
    check("table inet palisade_x {\nchain c { type filter hook input priority 0 ; jump nowhere ; }\n}\n", {
      netns: ns,
    }),
  );
  assert.equal(e.code, "nft_rejected");
  assert.equal(e.feature, undefined);
});

test("the agent's safe apply reports the feature; the version it ran stays in the kernel", async (t) => {
  if (hasQueue) return t.skip(NO_QUEUE);
  const applier = new Applier(nftDriver({ netns: ns }), memoryLog());
  const confirm = { confirmTimeoutMs: 5000, confirmed: async () => true };
  const first = await applier.safeApply({ text: render(false), ...confirm });
  assert.equal(first.status, "applied", JSON.stringify(first));
  const kernelBefore = (await lab.nft(ns, ["list", "ruleset"])).stdout;
  const out = await applier.safeApply({ text: render(true), ...confirm });
  assert.equal(out.status, "failed");
  assert.equal(out.code, "check_failed");
  assert.match(
    out.error ?? "",
    /no nftables queue support.*modprobe nft_queue.*\[kernel: Could not process rule: No such file or directory\]/,
  );
  assert.equal((await lab.nft(ns, ["list", "ruleset"])).stdout, kernelBefore);
});
