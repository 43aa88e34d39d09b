// spaKnock (pknock UDP mode) on a real kernel: the policy logs knocks to NFLOG and drops
// them; the agent's NFLOG reader hands them to its verifier, which opens the port for the
// knocking source by one element add. The knocks are computed by an independent sender
// (python's hmac, from the manual's description: HMAC-SHA256 over the source address and
// the minutes since the epoch), so the agent's digest is checked against another's.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Background, type Link, type NetnsLab } from "../support/netns.ts";
import { applyPolicy } from "../support/nft-lab.ts";
import { LogReader } from "../../src/agent/telemetry/logs.ts";
import { policyFacts } from "../../src/agent/render.ts";
import { SpaVerifier, type KnockOutcome } from "../../src/agent/spa.ts";
import { memoryLog } from "../../src/runtime/log.ts";

const OPEN = "open-Sesame-7";
const CLOSE = "close-Sesame-7";
const KNOCK_PORT = 4000;
const PORT = 2121;

// Prints the hex payload it sent (64 digits; the datagram carries them plus a NUL, as
// pknock's knock scripts send).
const KNOCKER = String.raw`
import hashlib, hmac, socket, struct, sys, time
host, port, secret, src = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
digest = hmac.new(secret, socket.inet_aton(src) + struct.pack("<I", int(time.time()) // 60), hashlib.sha256).hexdigest()
payload = bytes.fromhex(sys.argv[5]) if len(sys.argv) > 5 else digest.encode() + b"\0"
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(payload, (host, port))
print(payload.hex())
`;

describe("spaKnock: HMAC knocks verified by the agent (kernel, netns)", () => {
  let lab: NetnsLab;
  let reader: LogReader | undefined;
  let listener: Background | undefined;
  let server: string;
  let one: { ns: string; link: Link };
  let two: { ns: string; link: Link };
  let spa: SpaVerifier;
  const outcomes: Array<KnockOutcome & { rule: string }> = [];

  before(async () => {
    lab = createLab();
    const p = await lab.pair();
    server = p.server;
    one = { ns: p.client, link: p.link };
    const other = await lab.addNamespace();
    two = { ns: other, link: await lab.link(other, server) };
    const group = 60 + (process.pid % 100);
    const policy = {
      chains: {
        input: {
          hook: "input" as const,
          policy: "drop" as const,
          rules: [{ match: { ctState: ["established" as const, "related" as const] }, action: "accept" as const }],
        },
      },
      protections: {
        spaKnock: [
          {
            name: "FTP",
            knockPort: KNOCK_PORT,
            port: PORT,
            openSecret: OPEN,
            closeSecret: CLOSE,
            openSeconds: 600,
            logGroup: group,
          },
        ],
      },
    };
    await applyPolicy(lab, server, policy);
    spa = new SpaVerifier({ netns: server }, memoryLog());
    spa.configure(policyFacts(JSON.stringify(policy)).spa);
    spa.onOutcome = (o) => outcomes.push(o);
    reader = new LogReader({
      groups: [group],
      netns: server,
      log: memoryLog(),
      onEvents: () => {},
      onPacket: (pk) => spa.onPacket(pk),
    });
    await reader.start();
    listener = lab.background(server, ["socat", "TCP-LISTEN:2121,fork,reuseaddr", "EXEC:/bin/true"], {
      maxLifetimeMs: 300_000,
    });
    // Bounded wait until socat listens (a connect through the firewall would be dropped anyway).
    for (let i = 0; i < 100; i++) {
      if ((await lab.exec(server, ["ss", "-ltnH", `sport = :${PORT}`])).stdout.trim() !== "") break;
      await new Promise((res) => setTimeout(res, 50));
    }
  });
  after(async () => {
    try {
      await reader?.stop();
      await listener?.stop();
    } finally {
      await lab.cleanup();
    }
  });

  const knock = async (
    from: { ns: string; link: Link },
    secret: string,
    o: { payloadHex?: string; hmacFor?: string } = {},
  ) => {
    const before = outcomes.length;
    const r = await lab.exec(from.ns, [
      "/usr/bin/python3",
      "-c",
      KNOCKER,
      from.link.b.ip4,
      String(KNOCK_PORT),
      secret,
      o.hmacFor ?? from.link.a.ip4,
      ...(o.payloadHex ? [o.payloadHex] : []),
    ]);
    // Bounded wait for the verifier's outcome (NFLOG -> tcpdump -> verifier -> nft).
    for (let i = 0; i < 250 && outcomes.length === before; i++) await new Promise((res) => setTimeout(res, 20));
    await spa.idle();
    assert.equal(outcomes.length, before + 1, "the knock reached the verifier");
    return { outcome: outcomes[outcomes.length - 1]!, sent: r.stdout.trim() };
  };
  const canConnect = (from: { ns: string; link: Link }) => lab.tcpConnect(from.ns, from.link.b.ip4, PORT);

  it("the port is closed before any knock", async () => {
    assert.notEqual((await lab.exec(server, ["ss", "-ltnH", `sport = :${PORT}`])).stdout.trim(), "", "socat listens");
    assert.equal(await canConnect(one), false);
  });

  let openKnock = "";
  it("a correct open knock opens the port for that source only", async () => {
    const k = await knock(one, OPEN);
    assert.deepEqual(k.outcome, { kind: "open", source: one.link.a.ip4, rule: "FTP" });
    openKnock = k.sent;
    assert.equal(await canConnect(one), true, "the knocking source connects");
    assert.equal(await canConnect(two), false, "another source does not");
  });

  it("a knock under a wrong secret opens nothing", async () => {
    const k = await knock(two, "not-the-secret");
    assert.equal(k.outcome.kind, "refused");
    assert.equal(await canConnect(two), false);
  });

  it("a close knock closes the port again", async () => {
    const k = await knock(one, CLOSE);
    assert.deepEqual(k.outcome, { kind: "close", source: one.link.a.ip4, rule: "FTP" });
    assert.equal(await canConnect(one), false);
  });

  it("the captured open knock, replayed, opens nothing", async () => {
    const k = await knock(one, OPEN, { payloadHex: openKnock });
    assert.equal(k.outcome.kind, "refused");
    assert.match((k.outcome as { reason: string }).reason, /replayed open knock/);
    assert.equal(await canConnect(one), false);
  });

  it("one source's valid knock sent from another address opens nothing (the HMAC covers the address)", async () => {
    // The right secret, computed for one's address, sent by two: it does not match two's source.
    const k = await knock(two, OPEN, { hmacFor: one.link.a.ip4 });
    assert.equal(k.outcome.kind, "refused");
    assert.equal(await canConnect(two), false);
  });
});
