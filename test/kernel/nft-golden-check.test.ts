// Every golden render loads into a real kernel: `nft -c -f` inside a throwaway namespace
// (never the root namespace's firewall), then a real apply and a second apply on top
// (the replace works whether or not the tables exist).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createLab } from "../support/netns.ts";
import { goldenCases } from "../support/golden.ts";

const lab = createLab();
let ns = "";
before(async () => {
  ns = await lab.addNamespace();
});
after(() => lab.cleanup());

for (const c of goldenCases()) {
  test(`nft -c and apply twice: ${c.name}`, async () => {
    const text = readFileSync(c.expectedPath, "utf8");
    const check = await lab.nft(ns, ["-c", "-f", "-"], text, { allowFailure: true });
    assert.equal(check.code, 0, check.stderr);
    for (let i = 0; i < 2; i++) {
      const r = await lab.nft(ns, ["-f", "-"], text, { allowFailure: true });
      assert.equal(r.code, 0, r.stderr);
    }
    const tables = (await lab.nft(ns, ["list", "tables"])).stdout;
    assert.ok(
      tables.split("\n").every((l) => l === "" || /^table \w+ palisade\w*$/.test(l)),
      tables,
    );
  });
}
