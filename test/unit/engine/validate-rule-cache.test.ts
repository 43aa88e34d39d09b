// rulesOf's refs are kept only inside one validation (withRuleCache): outside it a policy
// changed in place (as the importer builds one) is walked afresh.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Policy } from "../../../src/engine/policy/index.ts";
import { rulesOf, withRuleCache } from "../../../src/engine/validate/model.ts";

const policy = () =>
  Policy.parse({ chains: { input: { hook: "input", policy: "drop", rules: [{ action: "accept" }] } } });

describe("rulesOf's cache", () => {
  it("inside one validation every walk shares one list", () => {
    const p = policy();
    withRuleCache(() => assert.equal(rulesOf(p), rulesOf(p)));
  });

  it("outside a validation a policy changed in place is walked afresh", () => {
    const p = policy();
    assert.equal(rulesOf(p).length, 1);
    p.chains.input!.rules.push({ action: "drop" } as never);
    assert.equal(rulesOf(p).length, 2);
    withRuleCache(() => assert.equal(rulesOf(p).length, 2));
    p.chains.input!.rules.push({ action: "drop" } as never);
    assert.equal(rulesOf(p).length, 3, "the cache ended with the validation");
  });
});
