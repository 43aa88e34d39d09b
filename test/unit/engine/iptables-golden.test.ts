// Golden renders: each policy in test/golden/iptables/policies/ renders to the text in
// test/golden/iptables/<name>.txt (ipsets, IPv4, IPv6 sections). Regenerate with
// UPDATE_GOLDEN=1 after an intended change, and read the diff.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { Policy } from "../../../src/engine/policy/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";

const DIR = join(import.meta.dirname, "../../golden/iptables");
const CTX = { failsafe: { apiAddresses: ["203.0.113.5"], apiPort: 8443 } };

export function goldenText(name: string): string {
  const policy = Policy.parse(JSON.parse(readFileSync(join(DIR, "policies", `${name}.json`), "utf8")));
  const r = renderIptables(policy, CTX);
  if (!r.ok) throw new Error(`${name}: ${JSON.stringify(r.errors, null, 1)}`);
  return `### ipset restore\n${r.ipsets}### iptables-restore\n${r.text}### ip6tables-restore\n${r.text6}`;
}

for (const file of readdirSync(join(DIR, "policies"))
  .filter((f) => f.endsWith(".json"))
  .sort()) {
  const name = file.replace(/\.json$/, "");
  test(`golden iptables render: ${name}`, () => {
    const got = goldenText(name);
    const path = join(DIR, `${name}.txt`);
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(path, got);
    // A missing golden fails: writing it from the output under test would compare it with itself.
    assert.ok(existsSync(path), `${path} is missing: run with UPDATE_GOLDEN=1 and review it`);
    assert.equal(got, readFileSync(path, "utf8"));
    assert.equal(goldenText(name), got, "rendering is deterministic");
  });
}
