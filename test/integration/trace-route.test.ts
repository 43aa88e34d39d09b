// POST /v1/rulesets/:name/versions/:v/trace against a real database and the test
// process's own kernel (it runs as root, so the trace can make its namespaces).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { parse } from "yaml";
import { errorOf, startTestApp, type TestApp } from "../support/app.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp();
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "edge" } })).statusCode, 201);
  const policy = parse(readFileSync(new URL("../golden/presets.policy.yaml", import.meta.url), "utf8"));
  const v = await t.req("POST", "/v1/rulesets/edge/versions", { as: "operator", body: { policy } });
  assert.equal(v.statusCode, 201, v.body);
});
after(async () => {
  await t?.close();
});

test("an operator traces the port-139 trap then the ban: both dropped, by the rules that did it", async () => {
  const res = await t.req("POST", "/v1/rulesets/edge/versions/1/trace", {
    as: "operator",
    body: {
      packets: [
        "tcp 203.0.113.5:40000 -> 198.51.100.1:139 flags S iif eth0",
        "tcp 203.0.113.5:40001 -> 198.51.100.1:443 flags S iif eth0",
      ],
    },
  });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json() as { verdict: string; rules: Array<{ rule: string }>; packets: Array<{ verdict: string }> };
  assert.equal(body.verdict, "drop");
  assert.deepEqual(
    body.packets.map((p) => p.verdict),
    ["drop", "drop"],
  );
  assert.match(body.rules[body.rules.length - 1]!.rule, /@recent_protect_portscan_v4 drop/);
});

test("a viewer may not trace; a bad packet is 400 naming the token; a missing version is 404", async () => {
  const viewer = await t.req("POST", "/v1/rulesets/edge/versions/1/trace", {
    as: "viewer",
    body: { packets: ["udp 1.2.3.4:1 -> 5.6.7.8:2"] },
  });
  assert.equal(viewer.statusCode, 403);
  const bad = await t.req("POST", "/v1/rulesets/edge/versions/1/trace", {
    as: "operator",
    body: { packets: ["udp 1.2.3.4 -> 5.6.7.8:2"] },
  });
  assert.equal(bad.statusCode, 400);
  assert.match(errorOf(bad).message, /"1\.2\.3\.4": source needs a port/);
  const missing = await t.req("POST", "/v1/rulesets/edge/versions/9/trace", {
    as: "operator",
    body: { packets: ["udp 1.2.3.4:1 -> 5.6.7.8:2"] },
  });
  assert.equal(missing.statusCode, 404);
});
