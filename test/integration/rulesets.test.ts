// Rulesets and their versions over HTTP (app.inject) against a real database.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorOf, startTestApp, type TestApp } from "../support/app.ts";
import { invalidPolicy, validPolicy } from "../support/policies.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp();
});
after(async () => {
  await t?.close();
});

async function createRuleset(name: string, description = "") {
  const res = await t.req("POST", "/v1/rulesets", { body: { name, description } });
  assert.equal(res.statusCode, 201, res.body);
  return res.json();
}
async function addVersion(name: string, policy: unknown = validPolicy(), message?: string) {
  return t.req("POST", `/v1/rulesets/${name}/versions`, {
    as: "operator",
    body: { policy, ...(message && { message }) },
  });
}

describe("rulesets", () => {
  test("create, get (latest version null before the first), and the audit row", async () => {
    const created = await createRuleset("web", "front-end hosts");
    assert.equal(created.name, "web");
    assert.equal(created.description, "front-end hosts");
    assert.equal(created.latestVersion, null);
    const got = await t.req("GET", "/v1/rulesets/web", { as: "viewer" });
    assert.equal(got.statusCode, 200);
    assert.deepEqual(got.json(), created);
    const audit = await t.db.auditLog.findMany({ where: { action: "ruleset.create", target: "ruleset:web" } });
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.actor, "test-admin");
  });

  test("a duplicate name is 409 and writes nothing", async () => {
    await createRuleset("dup");
    const auditBefore = await t.db.auditLog.count();
    const res = await t.req("POST", "/v1/rulesets", { body: { name: "dup" } });
    assert.equal(res.statusCode, 409);
    assert.equal(errorOf(res).code, "conflict");
    assert.equal(await t.db.ruleset.count({ where: { name: "dup" } }), 1);
    assert.equal(await t.db.auditLog.count(), auditBefore);
  });

  test("bad names and unknown fields are 400 with a detail per problem", async () => {
    const bad = await t.req("POST", "/v1/rulesets", { body: { name: "Has Spaces/and slash" } });
    assert.equal(bad.statusCode, 400);
    const e = errorOf(bad);
    assert.equal(e.code, "invalid_request");
    assert.equal(e.details[0]!.path, "/name");
    const unknown = await t.req("POST", "/v1/rulesets", { body: { name: "ok-name", colour: "blue", size: 3 } });
    assert.equal(unknown.statusCode, 400);
    assert.deepEqual(
      errorOf(unknown)
        .details.map((d) => [d.path, d.code])
        .sort(),
      [
        ["/colour", "unknown_field"],
        ["/size", "unknown_field"],
      ],
    );
    assert.equal(await t.db.ruleset.count({ where: { name: "ok-name" } }), 0);
  });

  test("get of a missing ruleset is 404", async () => {
    const res = await t.req("GET", "/v1/rulesets/nope");
    assert.equal(res.statusCode, 404);
    assert.equal(errorOf(res).code, "not_found");
  });

  test("list pages with limit and cursor, in name order, without repeats or gaps", async () => {
    const names = Array.from({ length: 7 }, (_, i) => `page-${String(i).padStart(2, "0")}`);
    for (const n of names) await createRuleset(n);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/v1/rulesets?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const res = await t.req("GET", url, { as: "viewer" });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json() as { items: { name: string }[]; nextCursor: string | null };
      assert.ok(body.items.length <= 3);
      seen.push(...body.items.map((i) => i.name));
      cursor = body.nextCursor;
      pages++;
    } while (cursor);
    const all = (await t.db.ruleset.findMany({ orderBy: { name: "asc" } })).map((r) => r.name);
    assert.deepEqual(seen, all);
    assert.equal(pages, Math.ceil(all.length / 3));
    assert.ok(names.every((n) => seen.includes(n)));
  });

  test("a cursor that was not issued by the API is 400; limit out of range is 400", async () => {
    const res = await t.req("GET", "/v1/rulesets?cursor=not-a-cursor");
    assert.equal(res.statusCode, 400);
    assert.equal(errorOf(res).details[0]!.code, "invalid_cursor");
    assert.equal((await t.req("GET", "/v1/rulesets?limit=0")).statusCode, 400);
    assert.equal((await t.req("GET", "/v1/rulesets?limit=abc")).statusCode, 400);
    assert.equal((await t.req("GET", "/v1/rulesets?limit=2&colour=red")).statusCode, 400);
  });
});

describe("versions", () => {
  test("create from {policy}: 201 {version, checksum, warnings}; the ruleset shows it as latest", async () => {
    await createRuleset("v1test");
    const res = await addVersion("v1test", validPolicy(), "first cut");
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.version, 1);
    assert.match(body.checksum, /^[0-9a-f]{64}$/);
    assert.ok(Array.isArray(body.warnings));
    assert.equal((await t.req("GET", "/v1/rulesets/v1test")).json().latestVersion, 1);

    const v = await t.req("GET", "/v1/rulesets/v1test/versions/1", { as: "viewer" });
    assert.equal(v.statusCode, 200);
    const doc = v.json();
    assert.equal(doc.ruleset, "v1test");
    assert.equal(doc.version, 1);
    assert.equal(doc.checksum, body.checksum);
    assert.equal(doc.author, "test-operator");
    assert.equal(doc.message, "first cut");
    assert.equal(doc.document.chains.input.rules[0].comment, "allow 22");
    const audit = await t.db.auditLog.findFirst({ where: { target: "ruleset:v1test/versions/1" } });
    assert.equal(audit?.action, "ruleset.version.create");
    assert.equal(audit?.actor, "test-operator");
  });

  test("create from a YAML body (message in the query) and from JSON text sent as YAML", async () => {
    await createRuleset("yaml");
    const yaml =
      "chains:\n  input:\n    hook: input\n    policy: accept\n    rules:\n      - comment: ssh\n        match: { protocol: tcp, dport: 22 }\n        action: accept\n";
    const res = await t.req("POST", "/v1/rulesets/yaml/versions?message=from%20yaml", {
      body: yaml,
      headers: { "content-type": "application/yaml" },
    });
    assert.equal(res.statusCode, 201, res.body);
    const res2 = await t.req("POST", "/v1/rulesets/yaml/versions", {
      body: JSON.stringify(validPolicy(443)),
      headers: { "content-type": "application/yaml" },
    });
    assert.equal(res2.statusCode, 201, res2.body);
    assert.equal(res2.json().version, 2);
    const v1 = (await t.req("GET", "/v1/rulesets/yaml/versions/1")).json();
    assert.equal(v1.message, "from yaml");
    assert.equal(v1.document.chains.input.rules[0].comment, "ssh");
  });

  test("YAML that does not parse is 400 with the line; nothing written", async () => {
    await createRuleset("badyaml");
    const res = await t.req("POST", "/v1/rulesets/badyaml/versions", {
      body: "chains:\n  input: [unclosed\n",
      headers: { "content-type": "application/yaml" },
    });
    assert.equal(res.statusCode, 400);
    const e = errorOf(res);
    assert.equal(e.code, "malformed_request");
    assert.match(e.details[0]!.message, /line \d+/);
    assert.equal(await t.db.rulesetVersion.count({ where: { ruleset: { name: "badyaml" } } }), 0);
  });

  test("an invalid policy is 422 with every error in details; nothing written, counter untouched", async () => {
    await createRuleset("invalid");
    const res = await addVersion("invalid", invalidPolicy());
    assert.equal(res.statusCode, 422, res.body);
    const e = errorOf(res);
    assert.equal(e.code, "invalid_policy");
    const paths = e.details.map((d) => d.path);
    assert.ok(
      paths.some((p) => p.startsWith("/chains/input")),
      JSON.stringify(e.details),
    );
    assert.ok(
      paths.some((p) => p.startsWith("/chains/output")),
      JSON.stringify(e.details),
    );
    for (const d of e.details) assert.ok(d.code && d.message);
    assert.equal(await t.db.rulesetVersion.count({ where: { ruleset: { name: "invalid" } } }), 0);
    assert.equal((await t.db.ruleset.findUnique({ where: { name: "invalid" } }))?.latestVersion, 0);
    assert.equal((await addVersion("invalid")).json().version, 1);
  });

  test("a set named like one the agent fills (geo_v4_CC, geo_v6_CC, condition_NAME) is refused at the push, whatever the target, and nothing is stored", async () => {
    await createRuleset("reserved");
    for (const [set, type, element, prefix] of [
      ["geo_v4_US", "ipv4_addr", "198.51.100.1", "geo_v4_"],
      ["geo_v6_DE", "ipv6_addr", "2001:db8::1", "geo_v6_"],
      ["condition_maint", "ipv4_addr", "192.0.2.1", "condition_"],
    ] as const) {
      const doc = {
        sets: { [set]: { type, elements: [element] } },
        chains: { input: { hook: "input", rules: [{ match: { saddr: `@${set}` }, action: "drop" }] } },
      };
      const auditBefore = await t.db.auditLog.count();
      const res = await addVersion("reserved", doc);
      assert.equal(res.statusCode, 422, `${set}: ${res.body}`);
      const e = errorOf(res);
      assert.equal(e.code, "invalid_policy");
      assert.deepEqual(
        e.details.map((d) => [d.path, d.code]),
        [[`/sets/${set}`, "set_name_reserved"]],
      );
      assert.ok(e.details[0]!.message.includes(`set name "${set}"`), e.details[0]!.message);
      assert.ok(e.details[0]!.message.includes(`prefix "${prefix}"`), e.details[0]!.message);
      assert.equal(await t.db.rulesetVersion.count({ where: { ruleset: { name: "reserved" } } }), 0);
      assert.equal((await t.db.ruleset.findUnique({ where: { name: "reserved" } }))?.latestVersion, 0);
      assert.equal(await t.db.auditLog.count(), auditBefore);
      // The same refusal from a validation without a target and for each target.
      for (const q of ["", "?target=iptables", "?target=nftables"]) {
        const v = (await t.req("POST", `/v1/validate${q}`, { body: { policy: doc } })).json() as {
          valid: boolean;
          errors: { path: string; code: string }[];
        };
        assert.equal(v.valid, false, `${set} ${q}`);
        assert.deepEqual(
          v.errors.map((d) => [d.path, d.code]),
          [[`/sets/${set}`, "set_name_reserved"]],
        );
      }
    }
    assert.equal((await addVersion("reserved")).json().version, 1);
  });

  test("names only nft refuses: the push and iptables take them; the nftables render and validation refuse them, naming each path", async () => {
    await createRuleset("names");
    // A chain `import` and a set `mark` (nft keywords) rendered for iptables before the
    // engine checked names.
    const doc = {
      sets: { mark: { type: "ipv4_addr", elements: ["192.0.2.1"] } },
      chains: {
        import: { rules: [{ match: { saddr: "@mark" }, action: "drop" }] },
        input: { hook: "input", rules: [{ action: { type: "jump", chain: "import" } }] },
      },
    };
    const res = await addVersion("names", doc);
    assert.equal(res.statusCode, 201, res.body);
    const ipt = await t.req("GET", "/v1/rulesets/names/versions/1/render?target=iptables");
    assert.equal(ipt.statusCode, 200, ipt.body);
    assert.match(ipt.body, /^-A PAL-import -m set --match-set pal_mark src -j DROP$/m);
    const expected = [
      ["/chains/import", "name_is_nft_keyword"],
      ["/sets/mark", "name_is_nft_keyword"],
    ];
    for (const url of [
      "/v1/rulesets/names/versions/1/render",
      "/v1/rulesets/names/versions/1/render?target=nftables",
    ]) {
      const nft = await t.req("GET", url);
      assert.equal(nft.statusCode, 422, nft.body);
      const e = errorOf(nft);
      assert.equal(e.code, "invalid_policy");
      assert.match(e.message, /version 1 cannot be rendered for nftables/);
      assert.deepEqual(e.details.map((d) => [d.path, d.code]).sort(), expected);
      assert.match(e.details.find((d) => d.path === "/sets/mark")!.message, /set name "mark" is an nft keyword/);
    }
    const check = async (q: string) =>
      (await t.req("POST", `/v1/validate${q}`, { body: { policy: doc } })).json() as {
        valid: boolean;
        errors: { path: string; code: string }[];
      };
    assert.equal((await check("?target=iptables")).valid, true);
    assert.equal((await check("")).valid, true);
    const nftCheck = await check("?target=nftables");
    assert.equal(nftCheck.valid, false);
    assert.deepEqual(
      nftCheck.errors.map((d) => [d.path, d.code]),
      expected,
    );
  });

  test("body must be {policy} or {format, source}: neither, both, or half are 400", async () => {
    await createRuleset("shape");
    for (const body of [
      {},
      { policy: validPolicy(), format: "iptables", source: "-A INPUT -j ACCEPT" },
      { format: "iptables" },
      { policy: "not an object" },
    ]) {
      const res = await t.req("POST", "/v1/rulesets/shape/versions", { body });
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)} -> ${res.body}`);
      assert.equal(errorOf(res).code, "invalid_request");
    }
  });

  test("{format, source} imports iptables lines; 201 carries the per-line report", async () => {
    await createRuleset("imported");
    const source = "iptables -P INPUT DROP\n# ssh from anywhere\niptables -A INPUT -p tcp --dport 22 -j ACCEPT\n";
    const res = await t.req("POST", "/v1/rulesets/imported/versions", {
      body: { format: "iptables", source, message: "from the old box" },
    });
    assert.equal(res.statusCode, 201, res.body);
    const report = res.json().importReport as { line: number; status: string }[];
    assert.deepEqual(
      report.map((r) => r.line),
      [1, 2, 3],
    );
    assert.equal(report.find((r) => r.line === 3)?.status, "imported");
    const doc = (await t.req("GET", "/v1/rulesets/imported/versions/1")).json();
    assert.equal(doc.message, "from the old box");
    assert.match(JSON.stringify(doc.document.chains), /22/);
  });

  test("{format: iptables-save, family}: ip6tables-save text without its header is IPv6's only; family with a script is 400", async () => {
    await createRuleset("v6dump");
    // Policies only: neither a header nor a rule says IPv6, so only `family` can.
    const source = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    const res = await t.req("POST", "/v1/rulesets/v6dump/versions", {
      body: { format: "iptables-save", source, family: "ipv6" },
    });
    assert.equal(res.statusCode, 201, res.body);
    const doc = (await t.req("GET", "/v1/rulesets/v6dump/versions/1")).json();
    const input = doc.document.chains.input;
    assert.notEqual(input.policy, "drop", "an IPv6 dump's DROP must not drop IPv4");
    assert.deepEqual(input.rules.at(-1), {
      comment: "default policy DROP for IPv6 (ip6tables -P)",
      match: { family: "ipv6" },
      action: "drop",
    });
    const bad = await t.req("POST", "/v1/validate", {
      body: { format: "iptables", source: "iptables -P INPUT DROP\n", family: "ipv6" },
    });
    assert.equal(bad.statusCode, 400, bad.body);
    assert.match(bad.body, /family/);
  });

  test("{format, source, ipsets}: the sets' members come from `ipset save`; without them, the match is refused (422)", async () => {
    await createRuleset("withsets");
    const source = "*filter\n-A INPUT -m set --match-set friends src -j ACCEPT\nCOMMIT\n";
    const ipsets = "create friends hash:net family inet hashsize 1024 maxelem 65536\nadd friends 198.51.100.0/24\n";
    const res = await t.req("POST", "/v1/rulesets/withsets/versions", {
      body: { format: "iptables-save", source, ipsets },
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(
      res
        .json()
        .importReport.filter((r: { input?: string }) => r.input === "ipsets")
        .map((r: { line: number }) => r.line),
      [1, 2],
    );
    // The set came with its members: nothing to warn about.
    assert.deepEqual(res.json().warnings, []);
    const doc = (await t.req("GET", "/v1/rulesets/withsets/versions/1")).json();
    assert.deepEqual(doc.document.sets.friends.elements, ["198.51.100.0/24"]);

    const bare = await t.req("POST", "/v1/rulesets/withsets/versions", { body: { format: "iptables-save", source } });
    assert.equal(bare.statusCode, 422, bare.body);
    const e = errorOf(bare);
    assert.deepEqual(
      e.details.map((d) => d.path),
      ["/source/line/2"],
    );
    assert.match(e.details[0]!.message, /--match-set friends src: the input does not hold ipset friends/);
    assert.equal(await t.db.rulesetVersion.count({ where: { ruleset: { name: "withsets" } } }), 1);

    const alone = await t.req("POST", "/v1/rulesets/withsets/versions", {
      body: { policy: validPolicy(), ipsets },
    });
    assert.equal(alone.statusCode, 400, alone.body);
    const bad = await t.req("POST", "/v1/validate", {
      body: { format: "iptables-save", source, ipsets: "add friends 198.51.100.7\n" },
    });
    assert.equal(bad.json().valid, false);
    assert.equal(bad.json().errors[0].path, "/ipsets/line/1");
  });

  test("an import with a line it cannot represent is 422 naming the line; nothing written", async () => {
    await createRuleset("badimport");
    const source = "iptables -A INPUT -p tcp --dport 22 -j ACCEPT\niptables -A INPUT -m frobnicate --x -j ACCEPT\n";
    const res = await t.req("POST", "/v1/rulesets/badimport/versions", { body: { format: "iptables", source } });
    assert.equal(res.statusCode, 422, res.body);
    const e = errorOf(res);
    assert.equal(e.code, "invalid_policy");
    assert.deepEqual(
      e.details.map((d) => d.path),
      ["/source/line/2"],
    );
    assert.match(e.details[0]!.message, /line 2/);
    assert.equal(await t.db.rulesetVersion.count({ where: { ruleset: { name: "badimport" } } }), 0);
    const v = await t.req("POST", "/v1/validate", { body: { format: "iptables", source } });
    assert.equal(v.statusCode, 200);
    assert.equal(v.json().valid, false);
    assert.equal(v.json().errors[0].path, "/source/line/2");
    assert.equal(v.json().importReport.length, 2);
  });

  test("versions of a missing ruleset: 404 for create, get, list, render, diff", async () => {
    assert.equal((await addVersion("ghost")).statusCode, 404);
    assert.equal((await t.req("GET", "/v1/rulesets/ghost/versions/1")).statusCode, 404);
    assert.equal((await t.req("GET", "/v1/rulesets/ghost/versions")).statusCode, 404);
    assert.equal((await t.req("GET", "/v1/rulesets/ghost/versions/1/render")).statusCode, 404);
    assert.equal((await t.req("GET", "/v1/rulesets/ghost/diff")).statusCode, 404);
    await createRuleset("empty");
    const missing = await t.req("GET", "/v1/rulesets/empty/versions/3");
    assert.equal(missing.statusCode, 404);
    assert.match(errorOf(missing).message, /version 3/);
    assert.equal((await t.req("GET", "/v1/rulesets/empty/versions/zero")).statusCode, 400);
  });

  test("20 concurrent creates get numbers 1..20 exactly: no duplicates, no gaps", async () => {
    await createRuleset("race");
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => addVersion("race", validPolicy(1000 + i))));
    for (const r of results) assert.equal(r.statusCode, 201, r.body);
    const numbers = results.map((r) => r.json().version as number).sort((a, b) => a - b);
    assert.deepEqual(
      numbers,
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const rows = await t.db.rulesetVersion.findMany({
      where: { ruleset: { name: "race" } },
      orderBy: { number: "asc" },
    });
    assert.deepEqual(
      rows.map((r) => r.number),
      numbers,
    );
    assert.equal((await t.db.ruleset.findUnique({ where: { name: "race" } }))?.latestVersion, 20);
    // Each number holds the document its request sent.
    for (const r of results) {
      const { version } = r.json();
      const doc = (await t.req("GET", `/v1/rulesets/race/versions/${version}`)).json();
      assert.equal(doc.checksum, r.json().checksum);
    }
  });

  test("ifChanged=true: a document equal to the latest is 200 unchanged and creates nothing, even when 10 race; a different one is 201", async () => {
    await createRuleset("same");
    const add = (policy: unknown, q = "?ifChanged=true") =>
      t.req("POST", `/v1/rulesets/same/versions${q}`, { as: "operator", body: { policy } });
    const first = await add(validPolicy(80));
    assert.equal(first.statusCode, 201, first.body);
    const again = await Promise.all(Array.from({ length: 10 }, () => add(validPolicy(80))));
    for (const r of again) {
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual([r.json().version, r.json().unchanged, r.json().checksum], [1, true, first.json().checksum]);
    }
    // Different documents racing an equal one: each different one is a version; the equal one is one only if a different one landed first.
    const mixed = await Promise.all([
      ...Array.from({ length: 3 }, (_, i) => add(validPolicy(90 + i))),
      add(validPolicy(80)),
    ]);
    assert.deepEqual(
      mixed.slice(0, 3).map((r) => r.statusCode),
      [201, 201, 201],
    );
    assert.equal(
      await t.db.rulesetVersion.count({ where: { ruleset: { name: "same" } } }),
      1 + 3 + (mixed[3]!.statusCode === 201 ? 1 : 0),
    );
    // Without ifChanged (or with false) a document equal to the latest is a new version, as before.
    const latest = (await t.req("GET", "/v1/rulesets/same")).json().latestVersion as number;
    const doc = (await t.req("GET", `/v1/rulesets/same/versions/${latest}`)).json().document;
    const forced = await add(doc, "?ifChanged=false");
    assert.equal(forced.statusCode, 201, forced.body);
    assert.equal(forced.json().version, latest + 1);
    assert.equal((await add(doc)).json().unchanged, true);
    const yaml = await t.req("POST", "/v1/rulesets/same/versions?ifChanged=true&message=m", {
      as: "operator",
      body: "chains: {}\n",
      headers: { "content-type": "application/yaml" },
    });
    assert.ok([200, 201].includes(yaml.statusCode), yaml.body);
    const bad = await t.req("POST", "/v1/rulesets/same/versions?ifChanged=yes", {
      as: "operator",
      body: { policy: validPolicy(80) },
    });
    assert.equal(bad.statusCode, 400, bad.body);
  });

  test("list versions pages newest first", async () => {
    await createRuleset("hist");
    for (let i = 0; i < 5; i++) assert.equal((await addVersion("hist", validPolicy(2000 + i))).statusCode, 201);
    const p1 = (await t.req("GET", "/v1/rulesets/hist/versions?limit=2")).json();
    assert.deepEqual(
      p1.items.map((v: { version: number }) => v.version),
      [5, 4],
    );
    const p2 = (await t.req("GET", `/v1/rulesets/hist/versions?limit=2&cursor=${p1.nextCursor}`)).json();
    assert.deepEqual(
      p2.items.map((v: { version: number }) => v.version),
      [3, 2],
    );
    const p3 = (await t.req("GET", `/v1/rulesets/hist/versions?limit=2&cursor=${p2.nextCursor}`)).json();
    assert.deepEqual(
      p3.items.map((v: { version: number }) => v.version),
      [1],
    );
    assert.equal(p3.nextCursor, null);
  });

  test("render: nftables by default, text/plain; iptables on request; bad target 400", async () => {
    await createRuleset("render");
    await addVersion("render", validPolicy(8443));
    const nft = await t.req("GET", "/v1/rulesets/render/versions/1/render", { as: "viewer" });
    assert.equal(nft.statusCode, 200, nft.body);
    assert.match(String(nft.headers["content-type"]), /^text\/plain/);
    assert.match(nft.body, /8443/);
    const again = await t.req("GET", "/v1/rulesets/render/versions/1/render?target=nftables");
    assert.equal(again.body, nft.body, "rendering is deterministic");
    const ipt = await t.req("GET", "/v1/rulesets/render/versions/1/render?target=iptables");
    assert.equal(ipt.statusCode, 200, ipt.body);
    assert.match(String(ipt.headers["content-type"]), /^text\/plain/);
    assert.match(ipt.body, /--dport 8443/);
    assert.equal((await t.req("GET", "/v1/rulesets/render/versions/1/render?target=pf")).statusCode, 400);
  });

  test("render for a host: the largest recent --hitcount on iptables follows the kernel its agent reported", async () => {
    await createRuleset("hitcount");
    const policy = {
      chains: {
        input: {
          hook: "input",
          rules: [{ match: { recent: { name: "syn", mode: "update", seconds: 1, hitcount: 300 } }, action: "drop" }],
        },
      },
    };
    assert.equal((await addVersion("hitcount", policy)).statusCode, 201);
    const hcNew = await t.db.host.create({
      data: { name: "hc-new", capabilities: { kernel: "6.18.44-fc", nftVersion: "1.0.6" } },
    });
    const hcOld = await t.db.host.create({ data: { name: "hc-old", capabilities: { kernel: "6.1.0-27-amd64" } } });
    const url = "/v1/rulesets/hitcount/versions/1/render?target=iptables";
    const fresh = await t.req("GET", `${url}&host=hc-new`, { as: "viewer" });
    assert.equal(fresh.statusCode, 200, fresh.body);
    assert.match(fresh.body, /--hitcount 300 /);
    const old = await t.req("GET", `${url}&host=hc-old`, { as: "viewer" });
    assert.equal(old.statusCode, 422, old.body);
    assert.equal(errorOf(old).details[0]!.path, "/chains/input/rules/0/match/recent/hitcount");
    assert.match(errorOf(old).details[0]!.message, /kernel 6\.1\.0-27-amd64 .*255/);
    // No host: Linux 4.10 or later is assumed (255).
    assert.equal((await t.req("GET", url, { as: "viewer" })).statusCode, 422);
    assert.equal((await t.req("GET", `${url}&host=ghost`, { as: "viewer" })).statusCode, 404);
    // The host may be given by id as well, as everywhere else (an id is only ever an id).
    const byId = await t.req("GET", `${url}&host=${hcNew.id}`, { as: "viewer" });
    assert.equal(byId.statusCode, 200, byId.body);
    assert.match(byId.body, /--hitcount 300 /);
    assert.equal((await t.req("GET", `${url}&host=${hcOld.id.toUpperCase()}`, { as: "viewer" })).statusCode, 422);
    assert.equal(
      (await t.req("GET", `${url}&host=00000000-0000-4000-8000-000000000000`, { as: "viewer" })).statusCode,
      404,
    );
  });

  test("diff: structured changes between two versions; defaults to latest vs previous", async () => {
    await createRuleset("diff");
    await addVersion("diff", validPolicy(22));
    await addVersion("diff", validPolicy(2222));
    const res = await t.req("GET", "/v1/rulesets/diff/diff?from=1&to=2", { as: "viewer" });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.from, 1);
    assert.equal(body.to, 2);
    const paths = body.changes.map((c: { path: string }) => c.path);
    assert.ok(
      paths.some((p: string) => p.startsWith("/chains/input/rules/0")),
      JSON.stringify(body.changes),
    );
    assert.ok(body.changes.every((c: { op: string }) => ["add", "remove", "change"].includes(c.op)));
    assert.deepEqual((await t.req("GET", "/v1/rulesets/diff/diff")).json(), body);
    assert.deepEqual((await t.req("GET", "/v1/rulesets/diff/diff?from=2&to=2")).json().changes, []);
    assert.equal((await t.req("GET", "/v1/rulesets/diff/diff?from=1&to=9")).statusCode, 404);
  });

  test("a version never changes: the API has no way to, and the database refuses UPDATE", async () => {
    await createRuleset("frozen");
    await addVersion("frozen");
    for (const method of ["PUT", "PATCH", "DELETE"] as const) {
      assert.equal(
        (await t.req(method, "/v1/rulesets/frozen/versions/1", { body: { policy: validPolicy(1) } })).statusCode,
        404,
      );
    }
    await assert.rejects(
      t.db.rulesetVersion.updateMany({ where: { ruleset: { name: "frozen" } }, data: { message: "rewritten" } }),
      /immutable/,
    );
    await assert.rejects(t.db.rulesetVersion.deleteMany({ where: { ruleset: { name: "frozen" } } }), /immutable/);
    assert.equal((await t.req("GET", "/v1/rulesets/frozen/versions/1")).json().message, "");
  });
});

describe("validate", () => {
  test("valid policy: 200 valid=true; invalid: 200 valid=false with every error; nothing is stored", async () => {
    const before = await t.db.rulesetVersion.count();
    const ok = await t.req("POST", "/v1/validate", { as: "operator", body: { policy: validPolicy() } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().valid, true);
    assert.deepEqual(ok.json().errors, []);
    const bad = await t.req("POST", "/v1/validate?target=nftables", { body: { policy: invalidPolicy() } });
    assert.equal(bad.statusCode, 200);
    assert.equal(bad.json().valid, false);
    assert.ok(bad.json().errors.length >= 2);
    for (const d of bad.json().errors) assert.equal(d.severity, "error");
    const yaml = await t.req("POST", "/v1/validate", {
      body: "chains: {}\n",
      headers: { "content-type": "application/yaml" },
    });
    assert.equal(yaml.statusCode, 200, yaml.body);
    assert.equal(await t.db.rulesetVersion.count(), before);
  });
});
