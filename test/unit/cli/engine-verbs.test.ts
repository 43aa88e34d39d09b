// The local engine verbs of the real `palisade` binary: validate, render and import work
// on files without a server, print what an operator needs, and exit non-zero on errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BIN = join(import.meta.dirname, "../../../bin/palisade");
let dir = "";

function palisade(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(BIN, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "palisade-cli-"));
  await writeFile(
    join(dir, "good.yaml"),
    [
      "description: edge",
      "chains:",
      "  input:",
      "    hook: input",
      "    policy: drop",
      "    rules:",
      "      - { comment: replies, match: { ctState: [established, related] }, action: accept }",
      "      - { comment: ssh, match: { protocol: tcp, dport: 22 }, action: accept }",
      "",
    ].join("\n"),
  );
  await writeFile(
    join(dir, "mirror.json"),
    JSON.stringify({ chains: { input: { hook: "input", rules: [{ action: { type: "mirror" } }] } } }),
  );
  await writeFile(
    join(dir, "tarpit.json"),
    JSON.stringify({
      chains: {
        input: { hook: "input", rules: [{ match: { protocol: "tcp", dport: 80 }, action: { type: "tarpit" } }] },
      },
    }),
  );
  await writeFile(join(dir, "broken.yaml"), "chains:\n  input: [\n");
  await writeFile(
    join(dir, "fw.sh"),
    [
      "#!/bin/sh",
      "FRIEND=198.51.100.0/24",
      "iptables -P INPUT DROP",
      "iptables -A INPUT -s ${FRIEND} -p tcp --dport 22 -j ACCEPT",
      "iptables -A INPUT -p tcp --dport 80 -j MIRROR",
      "",
    ].join("\n"),
  );
});
after(() => rm(dir, { recursive: true, force: true }));

test("validate: a good policy passes, MIRROR is refused with the reason and exit 4 (invalid)", async () => {
  const good = await palisade(["validate", join(dir, "good.yaml")]);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /valid \(0 errors/);
  const bad = await palisade(["validate", join(dir, "mirror.json"), "--json"]);
  assert.equal(bad.code, 4);
  const out = JSON.parse(bad.stdout) as { ok: boolean; errors: { code: string; path: string; message: string }[] };
  assert.equal(out.ok, false);
  const mirror = out.errors.find((e) => e.code === "mirror_refused");
  assert.ok(mirror, bad.stdout);
  assert.equal(mirror.path, "/chains/input/rules/0/action");
  assert.match(mirror.message, /loop|DoS/i);
});

test("validate: YAML syntax errors name line and column", async () => {
  const r = await palisade(["validate", join(dir, "broken.yaml")]);
  assert.equal(r.code, 4);
  assert.match(r.stdout, /line \d+/);
});

test("render: nftables text for a good policy; a target that cannot express a feature says which can", async () => {
  const r = await palisade(["render", join(dir, "good.yaml")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^add table inet palisade$/m);
  assert.match(r.stdout, /tcp dport 22 accept comment "ssh"/);
  const ipt = await palisade(["render", join(dir, "good.yaml"), "--target", "iptables"]);
  assert.equal(ipt.code, 0, ipt.stderr);
  assert.match(ipt.stdout, /--dport 22 .*-j ACCEPT/);
  const tarpit = await palisade(["render", join(dir, "tarpit.json")]);
  assert.equal(tarpit.code, 4);
  assert.equal(tarpit.stdout, "");
  assert.match(tarpit.stderr, /TARPIT is not supported on target nftables.*iptables/);
});

test("import: every line reported; MIRROR refuses the import, and nothing is written", async () => {
  const out = join(dir, "imported.yaml");
  const r = await palisade(["import", join(dir, "fw.sh"), "--output", out]);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /MIRROR/);
  assert.match(r.stderr, /^5 +error/m);
  await assert.rejects(readFile(out), /ENOENT/);
  // Without the MIRROR line the script imports, and the result validates.
  const src = (await readFile(join(dir, "fw.sh"), "utf8")).replace(/^iptables .*MIRROR\n/m, "");
  await writeFile(join(dir, "fw2.sh"), src);
  const ok = await palisade(["import", join(dir, "fw2.sh"), "--output", out]);
  assert.equal(ok.code, 0, ok.stderr);
  const v = await palisade(["validate", out]);
  assert.equal(v.code, 0, v.stdout);
  assert.match(await readFile(out, "utf8"), /198\.51\.100\.0\/24/);
});

test("import: a headerless rules.v6 is read as ip6tables-save output (its DROP is IPv6's), --family ipv4 overrides, a bad --family is a usage error", async () => {
  const v6 = join(dir, "rules.v6");
  await writeFile(v6, "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
  const r = await palisade(["import", v6]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /read as ip6tables-save output \(the file's name says IPv6\)/);
  assert.doesNotMatch(r.stdout, /policy: drop/);
  assert.match(r.stdout, /family: ipv6\n\s+action: drop/);
  const as4 = await palisade(["import", v6, "--family", "ipv4"]);
  assert.equal(as4.code, 0, as4.stderr);
  assert.match(as4.stdout, /policy: drop/);
  const bad = await palisade(["import", v6, "--family", "inet"]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--family must be ipv4 or ipv6, got "inet"/);
  const script = await palisade(["import", join(dir, "fw.sh"), "--family", "ipv6"]);
  assert.equal(script.code, 2, script.stderr);
  assert.match(script.stderr, /--family applies only to iptables-save text/);
});

test("import --ipset: the set's members from `ipset save`; without it the match is refused, saying how to supply the set", async () => {
  await writeFile(join(dir, "sets.rules"), "*filter\n-A INPUT -m set --match-set office src -j ACCEPT\nCOMMIT\n");
  await writeFile(join(dir, "sets.save"), "create office hash:net family inet\nadd office 198.51.100.0/24\n");
  const bare = await palisade(["import", join(dir, "sets.rules")]);
  assert.equal(bare.code, 4, bare.stderr);
  assert.match(
    bare.stderr,
    /^error \/source\/line\/2: line 2: --match-set office src: the input does not hold ipset office; .*--ipset FILE.*\(import_ipset_contents_missing\)$/m,
  );
  assert.equal(bare.stdout, "");
  const full = await palisade(["import", join(dir, "sets.rules"), "--ipset", join(dir, "sets.save")]);
  assert.equal(full.code, 0, full.stderr);
  // The set came with its members: no warning (a warning line ends with its code).
  assert.deepEqual(
    [...full.stderr.matchAll(/^warning \S+: .*\((\w+)\)$/gm)].map((m) => m[1]),
    [],
  );
  assert.match(full.stderr, /^ipsets:2 +imported add office 198\.51\.100\.0\/24/m);
  assert.match(full.stdout, /198\.51\.100\.0\/24/);
  const exec = await palisade(["import", join(dir, "sets.rules"), "--format", "iptables", "--execute", "--ipset", "x"]);
  assert.equal(exec.code, 2, exec.stderr);
});

test("validate and render: a YAML file whose aliases expand past the limit is refused with the limit named, exit 4 (invalid)", async () => {
  const ports = Array.from({ length: 20_000 }, (_, i) => 1 + i).join(", ");
  let doc = `sets:\n  base:\n    type: inet_service\n    elements: &p [${ports}]\n`;
  for (let i = 0; i < 20; i++) doc += `  s${i}:\n    type: inet_service\n    elements: *p\n`;
  await writeFile(join(dir, "amplified.yaml"), doc);
  for (const verb of ["validate", "render"]) {
    const r = await palisade([verb, join(dir, "amplified.yaml")]);
    assert.equal(r.code, 4, `${verb}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /aliases may add at most 250000 nodes \(alias_expansion_too_large\)/, verb);
  }
});
