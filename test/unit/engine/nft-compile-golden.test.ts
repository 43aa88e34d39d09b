// Golden renders: every test/golden/<name>.policy.yaml renders byte-for-byte to <name>.nft.
// UPDATE_GOLDEN=1 rewrites the expected files (review the diff before committing).
// test/kernel/nft-golden-check.test.ts proves every expected file loads with `nft -c`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { goldenCases } from "../../support/golden.ts";

for (const c of goldenCases()) {
  test(`golden ${c.name}`, () => {
    const r = renderNft(c.policy, c.ctx);
    assert.ok(r.ok, `render failed: ${JSON.stringify(!r.ok && r.errors, null, 1)}`);
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(c.expectedPath, r.text);
    // A missing golden fails: writing it from the output under test would compare it with itself.
    assert.ok(existsSync(c.expectedPath), `${c.expectedPath} is missing: run with UPDATE_GOLDEN=1 and review it`);
    assert.equal(r.text, readFileSync(c.expectedPath, "utf8"));
    // Deterministic: a second render of the same document is identical.
    const again = renderNft(c.policy, c.ctx);
    assert.ok(again.ok && again.text === r.text);
  });
}
