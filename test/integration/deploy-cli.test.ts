// The CLI verbs over real HTTP: push (creating the ruleset, YAML and JSON), deploy with a
// selector and strategy flags, status with its progress line and exit codes, and the
// API's error envelope printed as one clear line.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { ROLE_TOKENS } from "../support/app.ts";
import { startFleet, type Fleet } from "../support/grpc-fleet.ts";

const BIN = fileURLToPath(new URL("../../bin/palisade", import.meta.url));
let f: Fleet;
let url: string;
let dir: string;

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, PALISADE_URL: url, PALISADE_TOKEN: ROLE_TOKENS.operator, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => child.pid && process.kill(child.pid, "SIGKILL"), 120_000);
  return new Promise((resolve) => child.once("close", (code) => (clearTimeout(timer), resolve({ code, out }))));
}

before(async () => {
  f = await startFleet();
  await f.startWorker();
  url = await f.t.app.listen({ host: "127.0.0.1", port: 0 });
  dir = await mkdtemp(join(tmpdir(), "palisade-cli-"));
});
after(async () => {
  await f?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("push, deploy --wait and status show a rollout through to its end", async () => {
  const agents = [
    await f.agent("cli-a", { env: "prod" }),
    await f.agent("cli-b", { env: "prod" }),
    await f.agent("cli-c", { env: "dev" }),
  ];
  await writeFile(
    join(dir, "v1.yaml"),
    "description: cli test\nchains:\n  input:\n    hook: input\n    policy: accept\n    rules:\n      - comment: ssh\n        match: { protocol: tcp, dport: 22 }\n        action: accept\n",
  );
  const p1 = await cli(["push", join(dir, "v1.yaml"), "--ruleset", "cli", "--message", "first"]);
  assert.equal(p1.code, 0, p1.out);
  assert.match(p1.out, /created ruleset cli/);
  assert.match(p1.out, /cli@1 checksum [0-9a-f]{64}/);

  const d = await cli([
    "deploy",
    "cli@1",
    "--labels",
    "env=prod",
    "--canary",
    "1",
    "--batch-size",
    "1",
    "--wait",
    "--timeout",
    "60",
  ]);
  assert.equal(d.code, 0, d.out);
  const id = /deployment ([0-9a-f-]{36})/.exec(d.out)![1]!;
  assert.match(d.out, /succeeded: 2\/2 done \(applied 2/);
  assert.match(d.out, /cli-a\s+batch 0\s+applied/);
  assert.equal(agents[2]!.desired.length, 0);

  const s = await cli(["status", id, "--no-watch"]);
  assert.equal(s.code, 0, s.out);
  assert.match(s.out, new RegExp(`${id} cli@1 succeeded`));
  const list = await cli(["status"]);
  assert.match(list.out, new RegExp(id));

  agents[0]!.answer = () => ({ status: "failed", error: "nft: syntax error" });
  await writeFile(
    join(dir, "v2.json"),
    JSON.stringify({ chains: { input: { hook: "input", policy: "accept", rules: [] } } }),
  );
  assert.equal((await cli(["push", join(dir, "v2.json"), "--ruleset", "cli"])).code, 0);
  const bad = await cli(["deploy", "cli@2", "--labels", "env=prod", "--canary", "1", "--wait", "--timeout", "60"]);
  assert.equal(bad.code, 1, bad.out);
  assert.match(bad.out, /halted/);
  assert.match(bad.out, /nft: syntax error/);
});

test("bad input is refused with one clear line and a non-zero exit", async () => {
  const nohost = await cli(["deploy", "cli@1", "--hosts", "ghost"]);
  assert.equal(nohost.code, 4);
  assert.match(nohost.out, /^error: invalid_request: the selector names hosts that cannot be targeted\n/m);
  assert.match(nohost.out, /^ {2}\/selector\/hosts\/0: no host with id or name "ghost"/m);
  const noSel = await cli(["deploy", "cli@1"]);
  assert.equal(noSel.code, 2);
  assert.match(noSel.out, /^error: usage: .*--labels k=v and\/or --hosts/m);
  const viewer = await cli(["deploy", "cli@1", "--labels", "env=prod"], { PALISADE_TOKEN: ROLE_TOKENS.viewer });
  assert.equal(viewer.code, 6);
  assert.match(viewer.out, /^error: forbidden: /m);
  await writeFile(join(dir, "broken.json"), "{ not json");
  const broken = await cli(["push", join(dir, "broken.json"), "--ruleset", "cli"]);
  assert.equal(broken.code, 4);
  assert.match(broken.out, /^error: malformed_request: .*is not JSON/m);
});

test("import rules.v6 --ruleset stores the policy the import showed: the family its name gave goes with the source", async () => {
  // Policies and a port rule: neither header nor rule says IPv6, only the file's name does.
  await writeFile(
    join(dir, "rules.v6"),
    "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n",
  );
  const r = await cli(["import", join(dir, "rules.v6"), "--ruleset", "v6import"]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /v6import@1/);
  const doc = await f.t.req("GET", "/v1/rulesets/v6import/versions/1");
  const input = doc.json().document.chains.input;
  assert.notEqual(input.policy, "drop", "the server read the IPv6 dump as IPv4: its DROP would drop IPv4 too");
  assert.deepEqual(input.rules.at(-1).match, { family: "ipv6" });
});
