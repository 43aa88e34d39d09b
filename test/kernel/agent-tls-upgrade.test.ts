// The in-place move from plaintext to mutual TLS keeps the firewall and the counters
// (docs/security.md, "Upgrading a host enrolled over plaintext"): a real agent in a lab
// namespace enrolls over plaintext against a real API (PostgreSQL, Redis, grpc-js), gets an
// accounting ruleset by a real deployment and counts UDP packets. The API then restarts in
// transition mode (mutual TLS, and the old plaintext port as the legacy port), the agent
// reconnects there with its bearer, and the running agent is upgraded with a secret from
// POST /v1/hosts/:id/tls-upgrade. After it: the kernel's ruleset keeps its handles with no
// kernel change, the nft counter, the accounting element and the API's total equal every
// packet sent before and after, the API's stream for the host runs on the certificate, the
// state dir holds tls.json (0600) and a credential.json marked mtls, and the old bearer is
// refused on the legacy port.
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { loadConfig } from "../../src/agent/config.ts";
import { startAgent, type AgentHandle } from "../../src/agent/main.ts";
import { StateDir } from "../../src/agent/state.ts";
import { ensureCa } from "../../src/api/tls/ca.ts";
import { readCounter } from "../../src/engine/driver/index.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { createLab, type NetnsLab } from "../support/netns.ts";
import {
  countKernelChanges,
  countedUdpPolicy,
  deployFirstVersion,
  assertCountedExactly,
  rulesetStructure,
} from "../support/counted-agent.ts";
import { serialOf } from "../support/cert-serial.ts";
import { client, startFleet, streamEnd, waitFor, type Fleet } from "../support/grpc-fleet.ts";

const PORT = 9612;
const SIZE = 32; // UDP payload; the IPv4 packet is SIZE + 28 bytes

describe("upgrading a plaintext-enrolled agent to mutual TLS in place (kernel)", () => {
  let f: Fleet;
  let lab: NetnsLab;
  let agent: AgentHandle | undefined;
  let dir = "";

  before(async () => {
    f = await startFleet({ tls: false, replicas: 1 });
    await f.startWorker();
    lab = createLab();
    dir = await mkdtemp(join(tmpdir(), "palisade-tls-upgrade-"));
  });
  after(async () => {
    await agent?.stop().catch(() => {});
    await lab?.cleanup();
    await f?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("same ruleset handles, no kernel change, exact counters, stream on the certificate, old bearer refused", {
    timeout: 240_000,
  }, async () => {
    const { client: peer, server: ns, link } = await lab.pair();
    assert.equal((await f.t.req("POST", "/v1/rulesets", { body: { name: "upgrade" } })).statusCode, 201);
    const v = await f.t.req("POST", "/v1/rulesets/upgrade/versions", {
      body: { policy: countedUdpPolicy(link.net4, PORT) },
    });
    assert.equal(v.statusCode, 201, v.body);

    // No CA yet: the token pins nothing and the agent enrolls over plaintext.
    const token = await f.enrollmentToken({ test: "tls-upgrade" });
    assert.doesNotMatch(token, /\.[0-9a-f]{64}$/, "a plaintext enrollment token");
    const plainPort = f.replicas[0]!.port;
    const legacyServer = `127.0.0.1:${plainPort}`;
    const log = memoryLog("info");
    const warnings = () => JSON.stringify(log.lines.filter((l) => Number(l.level) >= 40).slice(-5));
    agent = await startAgent(
      loadConfig(
        [
          "--server",
          legacyServer,
          "--enroll-token",
          token,
          "--state-dir",
          dir,
          "--name",
          "upgrade-edge",
          "--netns",
          ns,
          "--telemetry-interval",
          "1",
          "--drift-interval",
          "0",
        ],
        {},
      ),
      { log, backoff: { initialMs: 100, maxMs: 500 }, heartbeatMs: 500 },
    );
    const a = agent;
    assert.equal(a.client.mutualTls, false, "enrolled over plaintext");
    const state = new StateDir(dir);
    const plainCredential = (await state.readCredential())!;
    assert.equal(plainCredential.channel, "plaintext");
    const kernelChanges = countKernelChanges(a);

    await deployFirstVersion(f, "upgrade", "upgrade-edge");
    assert.equal(kernelChanges(), 1, "the deployment is one kernel change");
    let sent = 0;
    for (let i = 0; i < 3; i++) {
      await lab.sendUdp(peer, link.b.ip4, PORT, { count: 20, size: SIZE });
      sent += 20;
    }
    const rulesetBefore = rulesetStructure((await lab.nft(ns, ["-a", "list", "ruleset"])).stdout);
    assert.ok(
      rulesetBefore.some((l) => l.includes("udp_seen")),
      "the counter rule is in the kernel",
    );
    const drv = { netns: ns };
    assert.equal((await readCounter("inet", "palisade", "udp_seen", drv)).packets, sent, "counted before the upgrade");

    // The API restarts in transition mode: mutual TLS on new ports, the old port as the legacy port.
    await f.replicas[0]!.stop();
    const ca = await ensureCa(f.t.db, "tls-upgrade-kernel-secret-key-0123456789ab");
    const transition = await f.addReplica({
      opts: {
        tls: {
          ca,
          enrollAddress: "127.0.0.1:0",
          serverNames: ["127.0.0.1"],
          clientCertTtlSeconds: 3600,
          legacyAddress: legacyServer,
        },
      },
    });
    assert.equal(transition.legacyPort, plainPort);
    const host = await f.t.db.host.findUniqueOrThrow({ where: { name: "upgrade-edge" } });
    const streams = () => [...transition.sessions()].filter((s) => s.identity.hostId === host.id);
    await waitFor(() => streams().length === 1, 30_000, "the agent back on the legacy port", 100);
    assert.equal(streams()[0]!.identity.certSerial, undefined, "a bearer stream");
    await lab.sendUdp(peer, link.b.ip4, PORT, { count: 20, size: SIZE });
    sent += 20;

    const up = await f.t.req("POST", `/v1/hosts/${host.id}/tls-upgrade`, { as: "operator" });
    assert.equal(up.statusCode, 201, up.body);
    const connectsBefore = a.client.connects;
    await a.client.upgradeTls((up.json() as { secret: string }).secret);
    assert.ok(a.client.mutualTls, "the client runs on its certificate");
    assert.equal(a.client.server, `127.0.0.1:${transition.port}`, "the mutual TLS port from the answer");
    const serial = serialOf(a.client.certificate!);
    await waitFor(
      () => streams().length === 1 && streams()[0]!.identity.certSerial === serial,
      30_000,
      `the API's stream for the host on the certificate; agent warnings: ${warnings()}`,
      100,
    );
    assert.ok(a.client.connects > connectsBefore, "a new stream");
    await waitFor(
      async () => (await f.t.db.host.findUniqueOrThrow({ where: { id: host.id } })).credentialHash === null,
      10_000,
      "the bearer hash cleared",
      100,
    );

    // Traffic after the move.
    for (let i = 0; i < 3; i++) {
      await lab.sendUdp(peer, link.b.ip4, PORT, { count: 20, size: SIZE });
      sent += 20;
    }

    // The state dir: tls.json 0600, credential.json says mtls (tls.json written first).
    const tls = (await state.readTls())!;
    assert.equal(serialOf(tls.certPem), serial);
    assert.equal(tls.upgradedFrom, legacyServer);
    assert.equal((await stat(join(dir, "tls.json"))).mode & 0o777, 0o600);
    const cred = (await state.readCredential())!;
    assert.equal(cred.channel, "mtls");
    assert.equal(cred.hostId, host.id, "same host id");

    // The old bearer is refused on the legacy port.
    const c = client(legacyServer);
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${plainCredential.credential}`);
    const end = await streamEnd(c.Connect!(md) as grpc.ClientDuplexStream<unknown, unknown>);
    c.close();
    assert.equal(end.code, grpc.status.UNAUTHENTICATED, end.details);

    // The firewall was left alone and counted everything.
    const rulesetAfter = rulesetStructure((await lab.nft(ns, ["-a", "list", "ruleset"])).stdout);
    assert.deepEqual(rulesetAfter, rulesetBefore, "the kernel's ruleset (with its handles) is unchanged");
    assert.equal(kernelChanges(), 1, "no kernel change across the upgrade");
    await assertCountedExactly(f, { netns: ns, host: "upgrade-edge", src: link.a.ip4, sent, size: SIZE });

    // A crash between the two writes (tls.json new, credential.json still plaintext), then a
    // start with the same flags: the agent records mutual TLS and connects with its
    // certificate to the port it learned, without touching the kernel.
    await a.stop();
    agent = undefined;
    await state.writeCredential({ ...cred, channel: "plaintext" });
    const again = await startAgent(
      loadConfig(
        [
          "--server",
          legacyServer,
          "--state-dir",
          dir,
          "--name",
          "upgrade-edge",
          "--netns",
          ns,
          "--drift-interval",
          "0",
        ],
        {},
      ),
      { log, backoff: { initialMs: 100, maxMs: 500 }, heartbeatMs: 500 },
    );
    agent = again;
    assert.ok(again.client.mutualTls, "restarted on the certificate");
    assert.equal((await state.readCredential())!.channel, "mtls", "credential.json recorded as mtls at the start");
    await waitFor(
      () => streams().length === 1 && streams()[0]!.identity.certSerial === serial,
      30_000,
      `the restarted agent's stream on the certificate; agent warnings: ${warnings()}`,
      100,
    );
    await lab.sendUdp(peer, link.b.ip4, PORT, { count: 20, size: SIZE });
    sent += 20;
    assert.deepEqual(
      rulesetStructure((await lab.nft(ns, ["-a", "list", "ruleset"])).stdout),
      rulesetBefore,
      "the ruleset's handles after the restart",
    );
    assert.equal(
      (await readCounter("inet", "palisade", "udp_seen", drv)).packets,
      sent,
      "the nft counter after the restart",
    );
    console.log(
      `# upgrade: ${sent} packets counted across the move and a restart; streams ${connectsBefore} -> ${a.client.connects}`,
    );
  });
});
