// The agent tarball on a host that has only Node: `npm run pack:agent` packs it, it is
// unpacked into an empty directory (nothing else of the repository reachable from
// there), and the bundle runs inside a network namespace with an empty environment
// (`env -i`, cwd /) under the systemd unit's own privileges (its User played by uid
// 65534, its bounding/ambient capabilities and NoNewPrivileges, via setpriv), against a
// real `palisade server` (PostgreSQL, Redis). It enrolls, a deployment made over REST
// reaches its kernel, real packets are counted and the counters come back through the
// API. Afterwards the unpacked files are unchanged and its TMPDIR is empty: it wrote
// only to its state directory. The tarball's install.sh is checked with DESTDIR.
//
// The agent reaches the API as 127.0.0.1:50051 inside its namespace: socat there forwards
// to a unix socket that this process relays to the server's loopback gRPC port, and
// 127.0.0.1:50052 to its enrollment port (the agent channel is mutual TLS).
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, deleteRedisKeys, TEST_REDIS_URL, type TestDatabase } from "../support/db.ts";
import { createLab, type Background, type NetnsLab } from "../support/netns.ts";
import { setprivArgs, unitNodeFlags, unitPrivileges } from "../support/unit-privileges.ts";
import {
  killReplica,
  serveEnrollment,
  startBalancer,
  startReplicas,
  waitUntil,
  type Balancer,
  type Replica,
} from "../support/fleet-processes.ts";
import { restJson, type RestJson } from "../support/rest-json.ts";

const ROOT = join(import.meta.dirname, "../..");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const ADMIN = `tarball-admin-${randomBytes(12).toString("hex")}`;
const id = randomBytes(4).toString("hex");
const prefix = `palisade-tarball:${process.pid}:${id}`;
const NOBODY = 65534;
const HOST = `tarball-${id}`;

/** Every file below `dir` with its size and mtime: what "unchanged" is checked against. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const s = statSync(p);
      out.push(`${relative(dir, p)} ${e.isDirectory() ? "dir" : s.size} ${s.mtimeMs} ${(s.mode & 0o7777).toString(8)}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

describe("the agent tarball runs on a host with only Node (kernel, netns, real server)", () => {
  let lab: NetnsLab;
  let database: TestDatabase;
  let replica: Replica | undefined;
  let balancer: Balancer | undefined;
  let enrollBalancer: Balancer | undefined;
  let agent: Background | undefined;
  let work = "";
  let top = "";
  let stateDir = "";
  let tmp = "";
  let tarball = "";
  let unpacked: string[] = [];
  let ns = "";
  let client = "";
  let serverIp = "";
  let clientIp = "";
  let lan = "";

  let api: RestJson;

  before(async () => {
    // Pack exactly as `npm run pack:agent` does.
    execFileSync(process.execPath, [join(ROOT, "scripts/build.mjs"), "agent"], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    });
    tarball = execFileSync(process.execPath, [join(ROOT, "scripts/pack-agent.mjs")], {
      cwd: ROOT,
      encoding: "utf8",
    }).trim();
    work = mkdtempSync(join(tmpdir(), "palisade-tarball-"));
    chmodSync(work, 0o755);
    execFileSync("tar", ["-xzf", tarball, "-C", work]);
    top = join(work, `palisade-agent-${VERSION}`);
    unpacked = listing(top);
    stateDir = mkdtempSync(join(tmpdir(), "palisade-tarball-state-"));
    chownSync(stateDir, NOBODY, NOBODY);
    tmp = mkdtempSync(join(tmpdir(), "palisade-tarball-tmp-"));
    chownSync(tmp, NOBODY, NOBODY);

    lab = createLab();
    const p = await lab.pair();
    ns = p.server;
    client = p.client;
    serverIp = p.link.b.ip4;
    clientIp = p.link.a.ip4;
    lan = p.link.net4;

    database = await createTestDatabase();
    replica = (
      await startReplicas(1, {
        DATABASE_URL: database.url,
        REDIS_URL: TEST_REDIS_URL,
        PALISADE_ADMIN_TOKEN: ADMIN,
        PALISADE_QUEUE_PREFIX: prefix,
      })
    )[0]!;
    const server = replica;
    api = restJson(server.url, ADMIN, {
      timeoutMs: 15_000,
      // The server's log without its info lines, for a 5xx.
      serverErrorContext: () =>
        server
          .out()
          .split("\n")
          .filter((l) => !/"level":30/.test(l))
          .join("\n")
          .slice(-4000),
    });
    balancer = await startBalancer(join(tmpdir(), `palisade-tarball-${id}.sock`), () => [server.grpcPort]);
    lab.background(ns, ["socat", "TCP-LISTEN:50051,bind=127.0.0.1,fork,reuseaddr", `UNIX-CONNECT:${balancer.path}`], {
      maxLifetimeMs: 10 * 60_000,
    });
    for (let i = 0; i < 100 && !(await lab.tcpConnect(ns, "127.0.0.1", 50051)); i++)
      await new Promise((r) => setTimeout(r, 100));
    // Mutual TLS: the agent enrolls at 127.0.0.1:50052 (its --server's port + 1).
    const r = replica;
    enrollBalancer = await serveEnrollment(
      lab,
      ns,
      { addr: "127.0.0.1", port: 50052, socket: join(tmpdir(), `palisade-tarball-${id}-enroll.sock`) },
      () => [r],
    );
  });

  after(async () => {
    await agent?.stop().catch(() => {});
    if (replica) await killReplica(replica).catch(() => {});
    await balancer?.close().catch(() => {});
    await enrollBalancer?.close().catch(() => {});
    await lab?.cleanup();
    await database?.drop().catch(() => {});
    await deleteRedisKeys(prefix);
    for (const d of [work, stateDir, tmp]) if (d) rmSync(d, { recursive: true, force: true });
    if (tarball) rmSync(tarball, { force: true });
  });

  it("holds the bundle and its render worker, its package.json and proto, the unit and install.sh: no node_modules", () => {
    const files = unpacked.filter((l) => !/ dir /.test(l)).map((l) => l.split(" ")[0]);
    assert.deepEqual(files, [
      "README.md",
      "install.sh",
      "package.json",
      "palisade-agent-render.cjs",
      "palisade-agent.cjs",
      "palisade-agent.service",
      "proto/palisade/v1/agent.proto",
    ]);
    const size = unpacked.reduce((n, l) => n + (Number(l.split(" ")[1]) || 0), 0);
    assert.ok(size < 15 * 1024 * 1024, `installed footprint ${size} bytes`);
  });

  it("enrolls, applies a deployment to its namespace's kernel and reports real counters", async () => {
    const unit = readFileSync(join(top, "palisade-agent.service"), "utf8");
    const token = await api("POST", "/v1/enrollment-tokens", { labels: { via: "tarball" } });
    assert.equal(token.status, 201, `${JSON.stringify(token.json)}\n${replica!.out().slice(-3000)}`);
    const argv = [
      "env",
      "-i",
      "-C",
      "/",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      `TMPDIR=${tmp}`,
      "HOME=/nonexistent",
      "setpriv",
      ...setprivArgs(unitPrivileges(unit)),
      process.execPath,
      ...unitNodeFlags(unit),
      join(top, "palisade-agent.cjs"),
      "--server",
      "127.0.0.1:50051",
      "--enroll-token",
      token.json.token,
      "--state-dir",
      stateDir,
      "--name",
      HOST,
      "--telemetry-interval",
      "1",
      "--drift-interval",
      "0",
    ];
    agent = lab.background(ns, argv, { maxLifetimeMs: 5 * 60_000 });
    await waitUntil(
      async () => (await api("GET", `/v1/hosts/${HOST}`)).json.connection === "connected",
      60_000,
      `agent connected\n${agent.output().slice(-3000)}`,
    );

    const policy = {
      description: "tarball agent",
      accounting: { lan: { prefix: lan } },
      chains: {
        input: {
          hook: "input",
          policy: "accept",
          rules: [{ comment: "tarball-marker", action: { type: "account", table: "lan" } }],
        },
      },
    };
    assert.equal((await api("POST", "/v1/rulesets", { name: "tarball" })).status, 201);
    const push = await api("POST", "/v1/rulesets/tarball/versions", { policy });
    assert.equal(push.status, 201, JSON.stringify(push.json));
    const dep = await api("POST", "/v1/deployments", {
      ruleset: "tarball",
      version: push.json.version,
      selector: { hosts: [HOST] },
      strategy: { canary: 0, confirmTimeoutSeconds: 30 },
    });
    assert.equal(dep.status, 202, JSON.stringify(dep.json));
    const done = await waitUntil(
      async () => {
        const d = (await api("GET", `/v1/deployments/${dep.json.id}`)).json as { status: string };
        return ["succeeded", "failed", "cancelled"].includes(d.status) ? d : undefined;
      },
      120_000,
      `deployment ends\n${agent.output().slice(-3000)}`,
    );
    assert.equal(done.status, "succeeded", `${JSON.stringify(done)}\n${agent.output().slice(-3000)}`);
    const kernel = (await lab.nft(ns, ["list", "table", "inet", "palisade"])).stdout;
    assert.match(kernel, /tarball-marker/);

    const ping = await lab.ping(client, serverIp, { count: 10 });
    assert.equal(ping.received, ping.sent);
    // Echo requests from the client are the only packets into this namespace from its address.
    const row = await waitUntil(
      async () => {
        const r = await api("GET", `/v1/accounting/tables/lan?host=${HOST}`);
        const item = (r.json as { items?: { ip: string; srcPackets: number; srcBytes: number }[] }).items?.find(
          (x) => x.ip === clientIp,
        );
        return item && item.srcPackets >= ping.sent ? item : undefined;
      },
      60_000,
      `counters for ${clientIp} in the API\n${agent.output().slice(-3000)}`,
    );
    assert.equal(row.srcPackets, ping.sent);
    assert.equal(row.srcBytes, ping.sent * 84);
    assert.doesNotMatch(agent.output(), /"level":(50|60)\b/);
  });

  it("wrote nothing outside its state directory", async () => {
    await agent?.stop();
    assert.deepEqual(listing(top), unpacked, "the unpacked files changed");
    assert.deepEqual(readdirSync(tmp), [], "the agent wrote to TMPDIR");
    assert.ok(readdirSync(stateDir).includes("credential.json"), `state dir: ${readdirSync(stateDir).join(", ")}`);
  });

  it("install.sh installs the files, the unit (with this node) and a 0600 env file", async () => {
    const dest = mkdtempSync(join(tmpdir(), "palisade-tarball-dest-"));
    try {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          join(top, "install.sh"),
          ["--server", "api.example.net:50051", "--enroll-token", "tok-123"],
          { env: { ...process.env, DESTDIR: dest, PATH: `${join(process.execPath, "..")}:${process.env.PATH}` } },
          (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout)),
        ),
      );
      assert.match(out, /installed below/);
      const prefixDir = join(dest, "opt/palisade-agent");
      assert.deepEqual(readdirSync(prefixDir).sort(), [
        "README.md",
        "package.json",
        "palisade-agent-render.cjs",
        "palisade-agent.cjs",
        "proto",
      ]);
      const unit = readFileSync(join(dest, "etc/systemd/system/palisade-agent.service"), "utf8");
      const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? "";
      assert.ok(execStart.startsWith(`${process.execPath} `), execStart);
      assert.ok(execStart.endsWith(" /opt/palisade-agent/palisade-agent.cjs"), execStart);
      assert.match(unit, /^EnvironmentFile=-\/etc\/palisade\/agent\.env$/m);
      const envFile = join(dest, "etc/palisade/agent.env");
      assert.equal(statSync(envFile).mode & 0o777, 0o600);
      assert.equal(
        readFileSync(envFile, "utf8"),
        "PALISADE_SERVER=api.example.net:50051\nPALISADE_ENROLL_TOKEN=tok-123\n",
      );
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  });
});
