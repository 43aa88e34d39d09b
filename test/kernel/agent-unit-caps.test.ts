// The agent's log reader works under exactly the capability set the shipped systemd unit
// (deploy/palisade-agent.service) gives the agent: its User (a non-root user is played by
// uid 65534), CapabilityBoundingSet, AmbientCapabilities and NoNewPrivileges, applied with
// setpriv. Inside a lab namespace with a LOGMARK-style rule, real packets must come out
// as events with prefix, mark and ct mark (nft, tcpdump and conntrack all run under it).
// Measured before the unit ran as a non-root user: tcpdump started as root drops to its
// own user, which the bounding set forbids ("Couldn't change to 'tcpdump' uid=...:
// Operation not permitted"), so no event ever arrived.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { setprivArgs, unitPrivileges } from "../support/unit-privileges.ts";

const ROOT = join(import.meta.dirname, "../..");
const PROC = join(import.meta.dirname, "../support/bin/log-reader.ts");

describe("the log reader under the systemd unit's capability set (kernel, setpriv)", () => {
  let lab: NetnsLab;
  let child: ChildProcess | undefined;
  before(() => {
    lab = createLab();
  });
  after(async () => {
    if (child?.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGKILL");
    await lab.cleanup();
  });

  it("reads the unit's privileges", () => {
    const unit = readFileSync(join(ROOT, "deploy/palisade-agent.service"), "utf8");
    const p = unitPrivileges(unit);
    assert.deepEqual(p.bounding.sort(), ["net_admin", "net_raw"]);
    assert.equal(p.noNewPrivileges, true);
    // Its comment and its ordering agree: it waits for the network (it must reach the API).
    assert.match(unit, /^After=.*network-online\.target/m);
    assert.doesNotMatch(unit, /before the network/);
    assert.deepEqual(unitPrivileges("[Service]\nUser=x\nCapabilityBoundingSet=CAP_NET_ADMIN\n"), {
      user: "x",
      bounding: ["net_admin"],
      ambient: [],
      noNewPrivileges: false,
    });
  });

  it("delivers NFLOG events with prefix, mark and ct mark", async () => {
    const unit = readFileSync(join(ROOT, "deploy/palisade-agent.service"), "utf8");
    const { client, server, link } = await lab.pair();
    const group = 30 + (process.pid % 30);
    await lab.nft(
      server,
      ["-f", "-"],
      `table inet palisade {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport 9601 meta mark set 0x2a ct mark set 0x5
    udp dport 9601 log prefix "CAP " group ${group}
  }
}
`,
    );
    const argv = [
      "netns",
      "exec",
      server,
      "setpriv",
      ...setprivArgs(unitPrivileges(unit)),
      process.execPath,
      "--import",
      "tsx",
      PROC,
      "3",
      "30000",
    ];
    child = spawn("ip", argv, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HOME: "/nonexistent" },
    });
    let out = "";
    let err = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => child!.on("close", (code) => r(code)));
    for (let i = 0; i < 600 && !/"ready"/.test(out) && child.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 50));
    const lines = () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map(
          (l) =>
            JSON.parse(l) as { ready?: { groups: number[]; unavailable: unknown[] }; event?: Record<string, unknown> },
        );
    const ready = lines().find((l) => l.ready)?.ready;
    assert.deepEqual(ready, { groups: [group], unavailable: [] }, `reader did not start cleanly: ${out}${err}`);
    await lab.sendUdp(client, link.b.ip4, 9601, { count: 3, size: 20 });
    const code = await exited;
    const events = lines()
      .filter((l) => l.event)
      .map((l) => l.event!);
    assert.equal(events.length, 3, `events: ${out}${err}`);
    for (const e of events)
      assert.deepEqual([e.prefix, e.mark, e.ctmark, e.dport, e.saddr], ["CAP ", 0x2a, 0x5, 9601, link.a.ip4]);
    assert.equal(code, 0, err);
  });
});
