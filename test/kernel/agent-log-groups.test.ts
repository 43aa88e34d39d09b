// Log events reach /v1/logs with no log flag: the real agent (in a lab namespace, no
// --nflog-groups) reads exactly the NFLOG groups its applied ruleset logs to, following
// every apply and rollback. A deployment through the real REST API, rollout worker and
// gRPC server carries a policy with LOGMARK, a plain `log` action and the port-scan trap;
// real packets from the client namespace produce events the API lists. A host without
// tcpdump (or whose tcpdump cannot run) says so in GET /v1/hosts/:id and in
// `palisade hosts show`, instead of losing log events silently.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { loadConfig } from "../../src/agent/config.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { startAgent, type AgentHandle } from "../../src/agent/main.ts";
import { findProgram } from "../../src/agent/programs.ts";
import { renderNft } from "../../src/engine/index.ts";
import { Policy } from "../../src/engine/policy/index.ts";
import { ROLE_TOKENS } from "../support/app.ts";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { startFleet, waitFor, type Fleet } from "../support/grpc-fleet.ts";

const BIN = join(import.meta.dirname, "../../bin/palisade");

/** LOGMARK (default group), a `log` action (default group) and the port-scan trap on 9502. */
const policyV1 = {
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { comment: "mark", match: { protocol: "udp", dport: 9501 }, action: { type: "mark", value: 0x2a } },
        { comment: "logmark", match: { protocol: "udp", dport: 9501 }, action: { type: "logmark", prefix: "LM " } },
        { comment: "log", match: { protocol: "udp", dport: 9503 }, action: { type: "log", prefix: "LOG " } },
      ],
    },
  },
  protections: { portScanTrap: { ports: [9502], banSeconds: 60 } },
};
/** Only a LOGMARK to group 7: the agent must move from group 2 to group 7. */
const policyV2 = {
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        {
          comment: "logmark7",
          match: { protocol: "udp", dport: 9504 },
          action: { type: "logmark", prefix: "G7 ", group: 7 },
        },
      ],
    },
  },
};

interface LogItem {
  prefix: string;
  mark: number;
  fields: Record<string, unknown>;
}

describe("agent log groups follow the applied ruleset; missing programs are reported (kernel, gRPC, REST)", () => {
  let f: Fleet;
  let lab: NetnsLab;
  let url: string;
  const agents: AgentHandle[] = [];
  const dirs: string[] = [];

  const tempDir = async (p: string) => {
    const d = await mkdtemp(join(tmpdir(), p));
    dirs.push(d);
    return d;
  };
  const start = async (name: string, ns: string, path?: string) => {
    const dir = await tempDir("palisade-loggroups-");
    const token = await f.enrollmentToken({ test: "loggroups" });
    const args = [
      "--server",
      `127.0.0.1:${f.replicas[0]!.port}`,
      "--enroll-server",
      `127.0.0.1:${f.replicas[0]!.enrollPort}`,
      "--enroll-token",
      token,
      "--state-dir",
      dir,
      "--name",
      name,
      "--netns",
      ns,
      "--telemetry-interval",
      "1",
      "--drift-interval",
      "0",
    ];
    const a = await startAgent(loadConfig(args, {}), {
      log: memoryLog("warn"),
      backoff: { initialMs: 100, maxMs: 500 },
      heartbeatMs: 500,
      ...(path ? { path } : {}),
    });
    agents.push(a);
    return a;
  };
  const logs = async (host: string, prefix: string) =>
    (
      (await f.t.req("GET", `/v1/logs?host=${host}&prefix=${encodeURIComponent(prefix)}&limit=100`)).json() as {
        items: LogItem[];
      }
    ).items;
  const deploy = async (ruleset: string, version: number, host: string) => {
    const r = await f.t.req("POST", "/v1/deployments", {
      as: "operator",
      body: { ruleset, version, selector: { hosts: [host] }, strategy: { canary: 0, batchSize: 1 } },
    });
    assert.equal(r.statusCode, 202, r.body);
    const id = (r.json() as { id: string }).id;
    await waitFor(
      async () => ((await f.t.req("GET", `/v1/deployments/${id}`)).json() as { status: string }).status === "succeeded",
      60_000,
      `deployment ${id}`,
      100,
    );
  };
  const hostCaps = async (name: string) =>
    (
      (await f.t.req("GET", `/v1/hosts/${name}`)).json() as {
        capabilities: { unavailable?: { program: string; reason: string }[] };
      }
    ).capabilities;

  before(async () => {
    f = await startFleet({ replicas: 1 });
    await f.startWorker();
    url = await f.t.app.listen({ host: "127.0.0.1", port: 0 });
    lab = createLab();
    await f.t.req("POST", "/v1/rulesets", { body: { name: "logs" } });
    for (const policy of [policyV1, policyV2]) {
      const r = await f.t.req("POST", "/v1/rulesets/logs/versions", { body: { policy } });
      assert.equal(r.statusCode, 201, r.body);
    }
  });
  after(async () => {
    for (const a of agents) await a.stop().catch(() => {});
    await lab?.cleanup();
    await f?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("an agent started with no log flags delivers LOGMARK, log and port-scan events to /v1/logs", async () => {
    const { client, server, link } = await lab.pair();
    const agent = await start("logs-edge", server);
    assert.deepEqual(agent.logGroups.groups(), [], "nothing applied yet: no group read");
    await deploy("logs", 1, "logs-edge");
    await agent.logGroups.idle();
    assert.deepEqual(agent.logGroups.groups(), [2], "the groups the applied ruleset logs to");

    await lab.sendUdp(client, link.b.ip4, 9501, { count: 3, size: 20 });
    await lab.sendUdp(client, link.b.ip4, 9503, { count: 2, size: 20 });
    await lab.tcpConnect(client, link.b.ip4, 9502);
    let lm: LogItem[] = [],
      lg: LogItem[] = [],
      ps: LogItem[] = [];
    await waitFor(
      async () => {
        [lm, lg, ps] = await Promise.all([
          logs("logs-edge", "LM "),
          logs("logs-edge", "LOG "),
          logs("logs-edge", "Portscan:"),
        ]);
        return lm.length >= 3 && lg.length >= 2 && ps.length >= 1;
      },
      30_000,
      "LOGMARK, log and Portscan: events in /v1/logs",
      200,
    ).catch(() => undefined);
    assert.equal(lm.length, 3, "LOGMARK events");
    for (const e of lm) assert.deepEqual([e.mark, e.fields.dport, e.fields.saddr], [0x2a, 9501, link.a.ip4]);
    assert.equal(lg.length, 2, "log action events");
    for (const e of lg) assert.equal(e.fields.dport, 9503);
    assert.ok(ps.length >= 1, "the port-scan trap's event");
    assert.equal(ps[0]!.fields.dport, 9502);
  });

  it("a new version moves the reader to its groups; a rollback moves it back", async () => {
    const { client, server, link } = await lab.pair();
    const agent = await start("groups-edge", server);
    await deploy("logs", 1, "groups-edge");
    await agent.logGroups.idle();
    assert.deepEqual(agent.logGroups.groups(), [2]);
    await deploy("logs", 2, "groups-edge");
    await agent.logGroups.idle();
    assert.deepEqual(agent.logGroups.groups(), [7], "group 2 released, group 7 read");
    await lab.sendUdp(client, link.b.ip4, 9504, { count: 2, size: 20 });
    let g7: LogItem[] = [];
    await waitFor(async () => (g7 = await logs("groups-edge", "G7 ")).length >= 2, 30_000, "group 7 events", 200).catch(
      () => undefined,
    );
    assert.equal(g7.length, 2);

    // An apply that is never confirmed rolls back (the agent's own commit-confirmed path):
    // the groups follow the kernel back.
    const v1 = renderNft(Policy.parse(policyV1));
    assert.ok(v1.ok);
    let whileApplied: number[] = [];
    const out = await agent.applier.safeApply({
      text: v1.text,
      confirmTimeoutMs: 1,
      confirmed: async () => {
        await agent.logGroups.idle();
        whileApplied = agent.logGroups.groups();
        return false;
      },
    });
    assert.equal(out.status, "rolled_back");
    assert.deepEqual(whileApplied, [2], "while the unconfirmed version was in the kernel");
    await agent.logGroups.idle();
    assert.deepEqual(agent.logGroups.groups(), [7], "back to the confirmed version's group");
  });

  it("a host without tcpdump, or whose tcpdump cannot run, reports it in GET /v1/hosts/:id and `palisade hosts show`", async () => {
    // PATH with nft, ip and conntrack but no tcpdump.
    const bare = await tempDir("palisade-path-");
    for (const p of ["nft", "ip", "conntrack", "setpriv"]) await symlink(findProgram(p)!, join(bare, p));
    const { server: ns1 } = await lab.pair();
    await start("notcpdump-edge", ns1, bare);
    let caps = await hostCaps("notcpdump-edge");
    assert.deepEqual(caps.unavailable, [
      { program: "tcpdump", reason: "log events unavailable: tcpdump not installed" },
    ]);

    // A tcpdump that fails the way it does under a bounding set without CAP_SETUID/SETGID,
    // with a log rule already in the kernel when the agent starts.
    const failing = await tempDir("palisade-path-");
    for (const p of ["nft", "ip", "conntrack", "setpriv"]) await symlink(findProgram(p)!, join(failing, p));
    await writeFile(
      join(failing, "tcpdump"),
      "#!/bin/sh\necho \"tcpdump: Couldn't change to 'tcpdump' uid=108 gid=111: Operation not permitted\" >&2\nexit 1\n",
    );
    await chmod(join(failing, "tcpdump"), 0o755);
    // A root agent starts tcpdump as the tcpdump user (logs.ts): it must reach the script.
    await chmod(failing, 0o755);
    const { server: ns2 } = await lab.pair();
    await lab.nft(
      ns2,
      ["-f", "-"],
      `table inet palisade {\n chain input { type filter hook input priority 0; udp dport 9 log prefix "x" group 3; }\n}\n`,
    );
    await start("badtcpdump-edge", ns2, failing);
    caps = await hostCaps("badtcpdump-edge");
    assert.deepEqual(caps.unavailable, [
      {
        program: "tcpdump",
        reason:
          "log events of NFLOG group 3 unavailable: tcpdump exited (code 1): tcpdump: Couldn't change to 'tcpdump' uid=108 gid=111: Operation not permitted",
      },
    ]);

    const cli = (host: string) =>
      promisify(execFile)(process.execPath, [BIN, "hosts", "show", host], {
        env: { ...process.env, PALISADE_URL: url, PALISADE_TOKEN: ROLE_TOKENS.viewer },
        timeout: 60_000,
      });
    const shown = (await cli("notcpdump-edge")).stdout;
    assert.match(shown, /^notcpdump-edge \(/);
    assert.match(shown, /\n {2}unavailable:\n {4}log events unavailable: tcpdump not installed\n/);
    assert.match((await cli("logs-edge")).stdout, /unavailable: none/);
  });
});
