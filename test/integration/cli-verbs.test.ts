// Every API verb of the CLI (the real bin/palisade in a child process) against a real API,
// PostgreSQL and Redis: table headers, -o json equal to the API's own objects, -o yaml,
// the one error format with its exit statuses, push's "unchanged" and --force, deploy of
// the latest version, logs -f over the SSE stream, login and contexts (the config file's
// mode, no token printed), and bash completion made from the verb table.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { ensureCa } from "../../src/api/tls/ca.ts";
import { ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";
import { batch, makeHost } from "../support/telemetry-batches.ts";

const BIN = join(import.meta.dirname, "../../bin/palisade");
let t: TestApp;
let url: string;
let dir: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI with no PALISADE_* from the caller's environment and its config file in the test's directory. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("PALISADE_")),
  );
  return { ...env, HOME: dir, XDG_CONFIG_HOME: join(dir, "xdg"), ...extra };
}

function cli(
  args: string[],
  o: { token?: string | null; env?: Record<string, string>; stdin?: string } = {},
): Promise<Run> {
  const token = o.token === undefined ? ROLE_TOKENS.admin : o.token;
  const env = baseEnv({ ...(token === null ? {} : { PALISADE_SERVER: url, PALISADE_TOKEN: token }), ...o.env });
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  child.stdin.end(o.stdin ?? "");
  const timer = setTimeout(() => child.pid && process.kill(child.pid, "SIGKILL"), 60_000);
  return new Promise((resolve) =>
    child.once("close", (code) => (clearTimeout(timer), resolve({ code, stdout, stderr }))),
  );
}

async function ok(args: string[], o: Parameters<typeof cli>[1] = {}): Promise<string> {
  const r = await cli(args, o);
  assert.equal(r.code, 0, `palisade ${args.join(" ")}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function json<T>(args: string[], o: Parameters<typeof cli>[1] = {}): Promise<T> {
  return JSON.parse(await ok([...args, "-o", "json"], o)) as T;
}

const header = (out: string) => out.split("\n")[0]!.split(/\s{2,}/);
const api = async <T>(path: string): Promise<T> => (await t.req("GET", path)).json() as T;

const POLICY = (port: number) =>
  `description: cli verbs\nchains:\n  input:\n    hook: input\n    policy: accept\n    rules:\n      - comment: ssh\n        match: { protocol: tcp, dport: ${port} }\n        action: accept\n`;

before(async () => {
  t = await startTestApp();
  url = await t.app.listen({ host: "127.0.0.1", port: 0 });
  dir = await mkdtemp(join(tmpdir(), "palisade-cli-verbs-"));
  await makeHost(t.db, "edge-1");
  await makeHost(t.db, "edge-2");
});
after(async () => {
  await t?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("palisade API verbs", () => {
  test("push -f - reads YAML from stdin; the same document again is unchanged; --force makes a version anyway", async () => {
    const first = await ok(["push", "-f", "-", "--ruleset", "web", "--message", "first"], { stdin: POLICY(22) });
    assert.match(first, /^created ruleset web\nweb@1 checksum [0-9a-f]{64}\n$/);
    assert.match(await ok(["push", "-f", "-", "--ruleset", "web"], { stdin: POLICY(22) }), /^web@1 unchanged \(/);
    assert.equal(
      (await api<{ latestVersion: number }>("/v1/rulesets/web")).latestVersion,
      1,
      "unchanged created nothing",
    );
    const forced = await json<{ ruleset: string; version: number; unchanged?: boolean }>(
      ["push", "-f", "-", "--ruleset", "web", "--force"],
      { stdin: POLICY(22) },
    );
    assert.deepEqual([forced.ruleset, forced.version, forced.unchanged], ["web", 2, undefined]);
    await writeFile(join(dir, "v3.yaml"), POLICY(443));
    assert.match(await ok(["push", join(dir, "v3.yaml"), "--ruleset", "web", "--message", "https"]), /^web@3 checksum/);
  });

  test("rulesets and versions: table headers, json is the API's objects, yaml parses to the same", async () => {
    const table = await ok(["rulesets", "ls"]);
    assert.deepEqual(header(table), ["NAME", "LATEST", "UPDATED", "DESCRIPTION"]);
    assert.match(table, /^web\s+3\s+(\d+[smhd] ago|now)\s/m);
    const apiList = (await api<{ items: unknown[] }>("/v1/rulesets")).items;
    assert.deepEqual(await json(["rulesets", "ls"]), apiList);
    assert.deepEqual(parse(await ok(["rulesets", "ls", "-o", "yaml"])), apiList);
    assert.deepEqual(await json(["rulesets", "show", "web"]), await api("/v1/rulesets/web"));

    const versions = await ok(["versions", "ls", "web"]);
    assert.deepEqual(header(versions), ["VERSION", "CREATED", "AUTHOR", "CHECKSUM", "MESSAGE"]);
    assert.deepEqual(
      versions
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
      ["3", "2", "1"],
    );
    assert.deepEqual(header(await ok(["versions", "ls", "web", "-o", "wide"])), [
      "VERSION",
      "CREATED",
      "AUTHOR",
      "CHECKSUM",
      "FULL CHECKSUM",
      "MESSAGE",
    ]);
    assert.deepEqual(await json(["versions", "show", "web@2"]), await api("/v1/rulesets/web/versions/2"));
    const latest = await ok(["versions", "show", "web"]);
    assert.match(latest, /^# web@3 by test-admin, /);
    assert.equal(
      (parse(latest) as { chains: { input: { rules: { match: { dport: number } }[] } } }).chains.input.rules[0]!.match
        .dport,
      443,
    );
  });

  test("diff: the latest against the one before, @A against the latest, @A @B", async () => {
    const d = await ok(["diff", "web"]);
    assert.match(d, /^web@2 -> web@3: 1 change\(s\)\n~ \/chains\/input\/rules\/0\/match\/dport: 22 -> 443\n$/);
    assert.match(await ok(["diff", "web@1", "@2"]), /^web@1 -> web@2: no changes\n$/);
    const j = await json<{ from: number; to: number; changes: unknown[] }>(["diff", "web@1"]);
    assert.deepEqual([j.from, j.to, j.changes.length], [1, 3, 1]);
    assert.deepEqual(j, await api("/v1/rulesets/web/diff?from=1"));
  });

  test("diff NAME --host H: the applied version against the desired one, and the kernel's drift", async () => {
    const v = async (n: number) =>
      (await t.db.rulesetVersion.findFirstOrThrow({ where: { number: n, ruleset: { name: "web" } } })).id;
    await makeHost(t.db, "differ");
    await t.db.host.update({
      where: { name: "differ" },
      data: { appliedVersionId: await v(2), desiredVersionId: await v(3), drift: true },
    });
    const d = await ok(["diff", "web", "--host", "differ"]);
    assert.match(
      d,
      /^host differ: desired web@3, applied web@2, kernel DRIFTED from the applied version .*\nweb@2 -> web@3: 1 change\(s\)\n~ \/chains\/input\/rules\/0\/match\/dport: 22 -> 443\n$/,
    );
    const j = await json<{
      applied: { version: number };
      desired: { version: number };
      drift: boolean;
      diff: { from: number; to: number };
    }>(["diff", "web", "--host", "differ"]);
    assert.deepEqual([j.applied.version, j.desired.version, j.drift, j.diff.from, j.diff.to], [2, 3, true, 2, 3]);
    const other = await cli(["diff", "api", "--host", "differ"]);
    assert.equal(other.code, 3);
    assert.match(other.stderr, /^error: not_found: host differ neither runs nor is meant to run ruleset "api"/);
    await t.db.host.delete({ where: { name: "differ" } });
  });

  test("hosts: ls, show, label, disable/enable, delete", async () => {
    const ls = await ok(["hosts", "ls"]);
    assert.deepEqual(header(ls), ["NAME", "CONNECTION", "LAST SEEN", "APPLIED", "DESIRED", "DRIFT"]);
    assert.match(ls, /^edge-1\s+never_connected\s+-\s+-\s+-\s+no$/m);
    assert.deepEqual(await json(["hosts", "ls"]), (await api<{ items: unknown[] }>("/v1/hosts")).items);
    assert.deepEqual(header(await ok(["hosts", "ls", "-o", "wide"])), [
      "NAME",
      "CONNECTION",
      "LAST SEEN",
      "APPLIED",
      "DESIRED",
      "DRIFT",
      "LABELS",
      "AGENT",
      "KERNEL",
      "ID",
    ]);

    assert.match(await ok(["hosts", "label", "edge-1", "env=prod", "zone=eu"]), /^edge-1 labels: env=prod,zone=eu\n$/);
    assert.match(await ok(["hosts", "label", "edge-1", "zone-"]), /^edge-1 labels: env=prod\n$/);
    assert.deepEqual(
      (await json<{ name: string }[]>(["hosts", "ls", "--label", "env=prod"])).map((h) => h.name),
      ["edge-1"],
    );
    assert.match(
      await ok(["hosts", "show", "edge-1"]),
      /^edge-1 \([0-9a-f-]{36}\)\n {2}connection: never_connected\n {2}labels: {5}env=prod\n/,
    );

    assert.equal((await json<{ disabled: boolean }>(["hosts", "disable", "edge-2"])).disabled, true);
    assert.match(await ok(["hosts", "ls"]), /^edge-2\s+never_connected,disabled\s/m);
    assert.match(await ok(["hosts", "enable", "edge-2"]), /^edge-2 enabled\n$/);
    // tls-upgrade: refused without a CA (the channel runs without TLS), a pinned secret with one.
    await t.db.host.update({ where: { name: "edge-2" }, data: { credentialHash: "f".repeat(64) } });
    const noCa = await cli(["hosts", "tls-upgrade", "edge-2"]);
    assert.notEqual(noCa.code, 0);
    assert.match(noCa.stderr, /conflict: the agent channel runs without TLS/);
    const ca = await ensureCa(t.db, "cli-verbs-test-secret-key-0123456789abcdef");
    const up = await json<{ hostName: string; secret: string; caFingerprint: string }>([
      "hosts",
      "tls-upgrade",
      "edge-2",
    ]);
    assert.equal(up.hostName, "edge-2");
    assert.match(up.secret, new RegExp(`^palupgrade_[A-Za-z0-9_-]{43}\\.${ca.fingerprint}$`));
    assert.match(
      await ok(["hosts", "tls-upgrade", "edge-2"]),
      /^upgrade secret for host edge-2 \(usable once, expires .*\n {2}palupgrade_\S+\n/,
    );
    await makeHost(t.db, "doomed");
    assert.equal(await ok(["hosts", "delete", "doomed"]), "host doomed deleted\n");
    const gone = await cli(["hosts", "show", "doomed"]);
    assert.equal(gone.code, 3);
    assert.equal(gone.stderr, 'error: not_found: host "doomed" not found\n');
  });

  test("deploy NAME deploys the latest version; deployments ls/show (with targets)", async () => {
    const d = await ok(["deploy", "web", "--hosts", "edge-1"]);
    const id = /^deployment ([0-9a-f-]{36}): web@3 to 1 host\(s\)\n$/.exec(d)?.[1];
    assert.ok(id, d);
    const row = await t.db.deployment.findUniqueOrThrow({ where: { id } });
    assert.match(
      row.idempotencyKey ?? "",
      /^[0-9a-f-]{36}$/,
      "deploy sends an Idempotency-Key, so its retries cannot create a second rollout",
    );
    const ls = await ok(["deployments", "ls"]);
    assert.deepEqual(header(ls), ["ID", "CREATED", "VERSION", "STATUS", "APPLIED", "FAILED", "BY"]);
    assert.match(ls, new RegExp(`^${id}\\s+\\S+( ago)?\\s+web@3\\s+\\w+\\s+0/1\\s+0\\s+test-admin$`, "m"));
    assert.deepEqual(await json(["deployments", "ls"]), (await api<{ items: unknown[] }>("/v1/deployments")).items);
    const show = await ok(["deployments", "show", id]);
    assert.match(show, new RegExp(`^deployment ${id}: web@3 `));
    assert.match(show, /^HOST\s+BATCH\s+STATUS\s+VERSION\s+ERROR$/m);
    assert.match(show, /^edge-1\s+0\s+pending\s+web@3\s+waiting: host never connected$/m);
    const detail = await json<{ targets: { host: string }[] }>(["deployments", "show", id]);
    assert.deepEqual(
      detail.targets.map((x) => x.host),
      ["edge-1"],
    );
    // --wait that gives up: exit 7, and each waiting host says why (no deploy worker runs here, so it stays pending).
    const waited = await cli(["deploy", "web@2", "--hosts", "edge-2", "--wait", "--timeout", "1"]);
    assert.equal(waited.code, 7, waited.stderr + waited.stdout);
    assert.match(waited.stdout, /^ {2}edge-2\s+batch 0 {2}pending {2}\(host never connected\)$/m);
    assert.match(waited.stdout, /^still pending after 1s; run palisade status [0-9a-f-]{36} again to keep watching$/m);
    const none = await cli(["deploy", "ghost-set", "--hosts", "edge-1"]);
    assert.equal(none.code, 3);
    assert.match(none.stderr, /^error: not_found: ruleset "ghost-set" not found\n$/);
  });

  test("enrollment-tokens: create prints the secret and the agent line once; ls never shows it; revoke", async () => {
    const created = await ok(["enrollment-tokens", "create", "--ttl", "90m", "--labels", "env=prod"]);
    const m =
      /^enrollment token ([0-9a-f-]{36}) \(expires [^,]+, labels env=prod\):\n {2}(\S+)\n.*\n {2}palisade agent --server .* --enroll-token \2\n$/.exec(
        created,
      );
    assert.ok(m, created);
    const ls = await ok(["enrollment-tokens", "ls"]);
    assert.deepEqual(header(ls), ["ID", "STATE", "EXPIRES", "CREATED", "BY", "LABELS"]);
    // 90m shows as "in 1h" however many seconds pass before ls (a whole hour would be 1h or 2h).
    assert.match(ls, new RegExp(`^${m[1]}\\s+unused\\s+in 1h\\s`, "m"));
    assert.ok(
      !ls.includes(m[2]!) && !(await ok(["enrollment-tokens", "ls", "-o", "json"])).includes(m[2]!),
      "the secret is never listed",
    );
    assert.equal(await ok(["enrollment-tokens", "revoke", m[1]!]), `enrollment token ${m[1]} revoked\n`);
    const again = await cli(["enrollment-tokens", "revoke", m[1]!]);
    assert.equal(again.code, 3, again.stderr);
    const viewer = await cli(["enrollment-tokens", "ls"], { token: ROLE_TOKENS.viewer });
    assert.equal(viewer.code, 6);
    assert.match(viewer.stderr, /^error: forbidden: .*\nhint: /);
  });

  test("audit ls --since 1h: newest first, table and json", async () => {
    const table = await ok(["audit", "ls", "--since", "1h", "--limit", "5"]);
    assert.deepEqual(header(table), ["AT", "ACTOR", "ACTION", "TARGET"]);
    assert.equal(table.trim().split("\n").length, 6);
    const entries = await json<{ action: string; target: string }[]>(["audit", "ls", "--action", "host.labels.update"]);
    assert.deepEqual(
      entries.map((e) => e.target),
      ["host:edge-1", "host:edge-1"],
    );
    const none = await json<unknown[]>(["audit", "ls", "--from", new Date(Date.now() + 3600_000).toISOString()]);
    assert.deepEqual(none, []);
  });

  test("logs: oldest first; -f lists the recent ones, then prints new events from the SSE stream", async () => {
    const hostId = (await t.db.host.findUniqueOrThrow({ where: { name: "edge-1" } })).id;
    const ev = (ms: number, dport: number) => ({
      unixMs: ms,
      prefix: "SSH ",
      level: 4,
      mark: 7,
      ctmark: 0,
      iif: "wan0",
      oif: "",
      saddr: "203.0.113.5",
      daddr: "198.51.100.1",
      protocol: "tcp",
      sport: 40000,
      dport,
      length: 60,
    });
    const now = Date.now();
    await ingestTelemetry(t, hostId, batch("logs", 1, now, [], { logs: [ev(now - 2000, 22), ev(now - 1000, 23)] }));
    const table = await ok(["logs", "--host", "edge-1"]);
    assert.deepEqual(header(table), ["AT", "HOST", "PREFIX", "IN", "OUT", "PROTO", "SRC", "SPORT", "DST", "DPORT"]);
    assert.deepEqual(
      table
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.split(/\s{2,}/).at(-1)),
      ["22", "23"],
      "oldest first",
    );
    const listed = await json<{ fields: { dport: number } }[]>(["logs", "--host", "edge-1"]);
    assert.deepEqual(
      listed.map((e) => e.fields.dport),
      [22, 23],
    );

    const child = spawn(
      process.execPath,
      [BIN, "logs", "-f", "--host", "edge-1", "--limit", "1", "--max-events", "1", "-o", "json"],
      { env: baseEnv({ PALISADE_SERVER: url, PALISADE_TOKEN: ROLE_TOKENS.viewer }), stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      let out = "";
      let err = "";
      child.stderr.on("data", (b: Buffer) => (err += b.toString()));
      const closed = new Promise<number | null>((r) => child.once("close", (c) => r(c)));
      // The recent event prints only after the stream is open: then a new one cannot be missed.
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (b: Buffer) => {
          out += b.toString();
          if (out.includes("\n")) resolve();
        });
        child.once("close", () => reject(new Error(`logs -f ended early: ${err}${out}`)));
      });
      await ingestTelemetry(t, hostId, batch("logs", 2, Date.now(), [], { logs: [ev(Date.now(), 8443)] }));
      assert.equal(await closed, 0, err);
      const lines = out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { fields: { dport: number } });
      assert.deepEqual(
        lines.map((e) => e.fields.dport),
        [23, 8443],
      );
    } finally {
      if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, "SIGKILL");
    }
  });

  test("logs -f: a token revoked while following ends it with exit 6 (the server's event: end token_revoked)", async () => {
    const created = (await t.req("POST", "/v1/tokens", { body: { name: "follower", role: "viewer" } })).json() as {
      id: string;
      token: string;
    };
    const child = spawn(process.execPath, [BIN, "logs", "-f", "--limit", "1", "-o", "json"], {
      env: baseEnv({ PALISADE_SERVER: url, PALISADE_TOKEN: created.token }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      let out = "";
      let err = "";
      child.stderr.on("data", (b: Buffer) => (err += b.toString()));
      const closed = new Promise<number | null>((r) => child.once("close", (c) => r(c)));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (b: Buffer) => {
          out += b.toString();
          if (out.includes("\n")) resolve();
        });
        child.once("close", () => reject(new Error(`logs -f ended early: ${err}${out}`)));
      });
      assert.equal((await t.req("DELETE", `/v1/tokens/${created.id}`)).statusCode, 204);
      assert.equal(await closed, 6, err);
      assert.match(err, /^error: unauthorized: the token was revoked; the server ended the log stream\n/);
    } finally {
      if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, "SIGKILL");
    }
  });

  test("errors: one format on stderr, documented exit statuses", async () => {
    const cases: [string[], Parameters<typeof cli>[1], RegExp, number][] = [
      [["hosts", "ls", "-o", "xml"], {}, /^error: usage: option '-o, --output <format>' argument 'xml' is invalid/, 2],
      [["hosts", "frobnicate"], {}, /^error: usage: unknown command 'frobnicate'/, 2],
      [["nope"], {}, /^error: usage: unknown command 'nope'/, 2],
      [["audit", "ls", "--since", "yesterday"], {}, /^error: usage: --since: "yesterday" is not a time\nhint: /, 2],
      [["versions", "show", "web@9"], {}, /^error: not_found: version 9 of ruleset "web" not found\n$/, 3],
      [
        ["hosts", "ls"],
        { token: "wrong-token-000000000000000000000" },
        /^error: unauthorized: .*\nhint: pass --token, set PALISADE_TOKEN, or run `palisade login/,
        6,
      ],
      [
        ["hosts", "ls"],
        { token: null, env: { PALISADE_SERVER: "http://127.0.0.1:9" } },
        /^error: unauthorized: no API token for http:\/\/127\.0\.0\.1:9\n/,
        6,
      ],
      [
        ["hosts", "ls", "--token", "x"],
        { token: null, env: { PALISADE_SERVER: "http://127.0.0.1:9" } },
        /^error: unreachable: cannot reach http:\/\/127\.0\.0\.1:9: .*\nhint: check --server/,
        5,
      ],
      [
        ["push", "-f", "-", "--ruleset", "web"],
        { stdin: "chains:\n  input:\n    hook: input\n    policy: maybe\n" },
        /^error: invalid_policy: .*\n {2}\/chains\/input\/policy: /,
        4,
      ],
      [["tokens", "revoke", "00000000-0000-4000-8000-000000000000"], {}, /^error: not_found: token /, 3],
    ];
    for (const [args, o, re, status] of cases) {
      const r = await cli(args, o);
      assert.equal(r.code, status, `palisade ${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re, `palisade ${args.join(" ")}`);
      assert.equal(r.stdout, "", `palisade ${args.join(" ")} printed to stdout`);
    }
    // The last admin token cannot be revoked: a conflict, exit 4.
    const admin = (await t.db.apiToken.findFirstOrThrow({ where: { name: "test-admin" } })).id;
    const last = await cli(["tokens", "revoke", admin]);
    assert.equal(last.code, 4, last.stderr);
    assert.match(last.stderr, /^error: conflict: refusing to revoke the last active admin token/);
  });
});

describe("palisade login and contexts", () => {
  test("login stores the context (mode 0600, token never printed); verbs use it; use-context and get-contexts", async () => {
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, ROLE_TOKENS.viewer + "\n");
    const bad = join(dir, "bad-token");
    await writeFile(bad, "not-a-real-token-0000000000000000\n");
    const refused = await cli(["login", "--server", url, "--token-file", bad, "--context", "lab"], { token: null });
    assert.equal(refused.code, 6, refused.stderr);
    const file = join(dir, "xdg", "palisade", "config.yaml");
    await assert.rejects(stat(file), "a refused login stores nothing");

    const out = await ok(["login", "--server", url, "--token-file", tokenFile, "--context", "lab"], { token: null });
    assert.match(out, /^logged in to http:\/\/127\.0\.0\.1:\d+; context "lab" is current/);
    assert.ok(!out.includes(ROLE_TOKENS.viewer));
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.match(await readFile(file, "utf8"), /current-context: lab/);

    // No flags, no environment: the current context's server and token.
    assert.deepEqual(
      await json(["hosts", "ls"], { token: null }),
      (await api<{ items: unknown[] }>("/v1/hosts")).items,
    );
    const contexts = await ok(["config", "get-contexts"], { token: null });
    assert.deepEqual(header(contexts), ["CURRENT", "NAME", "SERVER"]);
    assert.match(contexts, new RegExp(`^\\*\\s+lab\\s+${url.replace(/[.]/g, "\\.")}$`, "m"));
    assert.ok(
      !contexts.includes(ROLE_TOKENS.viewer) &&
        !(await ok(["config", "get-contexts", "-o", "json"], { token: null })).includes(ROLE_TOKENS.viewer),
    );

    const missing = await cli(["config", "use-context", "nowhere"], { token: null });
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /^error: not_found: context "nowhere" not found in .*\nhint: /);
    // A context's token goes only to its own server: --server elsewhere gets none.
    const elsewhere = await cli(["hosts", "ls", "--server", "http://127.0.0.1:9"], { token: null });
    assert.equal(elsewhere.code, 6, elsewhere.stderr);
    assert.match(elsewhere.stderr, /^error: unauthorized: no API token for http:\/\/127\.0\.0\.1:9/);
    assert.equal(await ok(["config", "current-context"], { token: null }), "lab\n");
  });
});

describe("palisade completion", () => {
  test("bash: verbs, subcommands, flags and -o values from the verb table", async () => {
    const script = join(dir, "completion.bash");
    await writeFile(script, await ok(["completion", "bash"], { token: null }));
    const complete = (line: string) => {
      const words = line.split(" ");
      const r = spawnSync(
        "bash",
        [
          "-c",
          `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _palisade; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { encoding: "utf8" },
      );
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim().split("\n").filter(Boolean).sort();
    };
    assert.deepEqual(complete("palisade ho"), ["hosts"]);
    assert.deepEqual(complete("palisade hosts "), [
      "delete",
      "disable",
      "enable",
      "label",
      "ls",
      "show",
      "tls-upgrade",
    ]);
    assert.ok(complete("palisade hosts ls --").includes("--connection"));
    assert.deepEqual(complete("palisade versions ls web -o "), ["json", "table", "wide", "yaml"]);
    assert.ok(complete("palisade logs -").includes("--follow"));
    const zsh = await cli(["completion", "zsh"], { token: null });
    assert.match(zsh.stdout, /^#compdef palisade\n/);
    const fish = await cli(["completion", "fish"], { token: null });
    assert.equal(fish.code, 2);
  });
});
