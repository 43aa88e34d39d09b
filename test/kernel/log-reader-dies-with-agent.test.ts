// A SIGKILLed agent takes its tcpdump with it. The agent's log reader (the same LogGroups
// code the agent runs, as its own process: test/support/bin/log-reader.ts) reads an NFLOG
// group in a lab namespace; it is SIGKILLed, and the tcpdump it started must be gone within
// a bounded wait. Measured before setpriv --pdeathsig: the orphan lived on (re-parented to
// pid 1) and kept the group. Run as root, where tcpdump would drop to its own user (a uid
// change clears the parent-death signal), and under the systemd unit's user and capabilities.
// As root the reader must also run as an unprivileged user (setpriv switches it before the
// signal is set; measured before: uid 0 under a bounding set, which still writes root's
// files) with only CAP_NET_ADMIN and CAP_NET_RAW, and still capture NFLOG; with
// no_new_privs and a bounding set of those two (measured before: NoNewPrivs 0 and root's
// full bounding set).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { setprivArgs, unitPrivileges } from "../support/unit-privileges.ts";

const ROOT = join(import.meta.dirname, "../..");
const PROC = join(import.meta.dirname, "../support/bin/log-reader.ts");

/** Children of `pid` (every thread's), by pid. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

/** Running (not gone, not a zombie waiting for a reaper). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
};

describe("a killed agent's tcpdump dies with it (kernel, NFLOG)", () => {
  let lab: NetnsLab;
  const started: ChildProcess[] = [];
  const orphans: number[] = [];
  before(() => {
    lab = createLab();
  });
  after(async () => {
    for (const c of started) if (c.pid && c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    // A tcpdump this test started that outlived its reader (the failure being tested).
    for (const pid of orphans) if (running(pid) && comm(pid) === "tcpdump") process.kill(pid, "SIGKILL");
    await lab.cleanup();
  });

  const unit = readFileSync(join(ROOT, "deploy/palisade-agent.service"), "utf8");
  for (const [as, privileges] of [
    ["root", []],
    ["the unit's user and capabilities", ["setpriv", ...setprivArgs(unitPrivileges(unit))]],
  ] as const) {
    it(`as ${as}: SIGKILL of the reader ends its tcpdump`, async () => {
      const { client, server, link } = await lab.pair();
      const group = 30 + ((process.pid + (as === "root" ? 0 : 1)) % 30);
      await lab.nft(
        server,
        ["-f", "-"],
        `table inet palisade {\n chain input { type filter hook input priority 0; udp dport 9602 log prefix "K " group ${group}; }\n}\n`,
      );
      const child = spawn(
        "ip",
        ["netns", "exec", server, ...privileges, process.execPath, "--import", "tsx", PROC, "1000", "60000"],
        { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, HOME: "/nonexistent" } },
      );
      started.push(child);
      let out = "";
      child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
      child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
      for (let i = 0; i < 600 && !/"ready"/.test(out) && child.exitCode === null; i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(out, /"ready":\{"groups":\[\d+\],"unavailable":\[\]\}/, `reader did not start cleanly: ${out}`);
      // `ip netns exec` and setpriv exec: the reader is the child's pid, tcpdump its child.
      const tcpdump = childrenOf(child.pid!).filter((p) => comm(p) === "tcpdump");
      assert.equal(tcpdump.length, 1, `one tcpdump under the reader: ${childrenOf(child.pid!).map(comm)}`);
      const pid = tcpdump[0]!;
      orphans.push(pid);
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const ids = (k: string) =>
        /^\S+:\s+(.*)$/m
          .exec(status.split("\n").find((l) => l.startsWith(`${k}:`)) ?? "")?.[1]
          ?.split(/\s+/)
          .map(Number) ?? [];
      const uids = ids("Uid");
      assert.equal(uids.length, 4, status);
      for (const u of uids) assert.notEqual(u, 0, `tcpdump runs as uid 0: ${status}`);
      for (const g of ids("Gid")) assert.notEqual(g, 0, `tcpdump runs as gid 0: ${status}`);
      const capEff = BigInt(`0x${/^CapEff:\s+(\S+)/m.exec(status)![1]}`);
      assert.equal(capEff & ~((1n << 12n) | (1n << 13n)), 0n, `tcpdump has more than NET_ADMIN, NET_RAW: ${status}`);
      // Nothing to gain by exec, and nothing to raise: no_new_privs, and a bounding set of the two.
      assert.match(status, /^NoNewPrivs:\s+1$/m, `tcpdump without no_new_privs: ${status}`);
      const capBnd = BigInt(`0x${/^CapBnd:\s+(\S+)/m.exec(status)![1]}`);
      assert.equal(capBnd & ~((1n << 12n) | (1n << 13n)), 0n, `tcpdump's bounding set holds more: ${status}`);
      if (as === "root") {
        const passwd = readFileSync("/etc/passwd", "utf8");
        const tcpdumpUid = /^tcpdump:[^:]*:(\d+):/m.exec(passwd)?.[1];
        assert.equal(uids[0], Number(tcpdumpUid ?? 65534), "the reader's user");
      }
      // It still reads the group: an NFLOG event arrives.
      await lab.sendUdp(client, link.b.ip4, 9602, { count: 2, size: 20 });
      for (let i = 0; i < 200 && !/"event"/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(out, /"event":\{[^\n]*"prefix":"K "/, `no NFLOG event read: ${out}`);
      const exited = new Promise<void>((r) => child.once("close", () => r()));
      child.kill("SIGKILL");
      await exited;
      for (let i = 0; i < 100 && running(pid); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(running(pid), false, `tcpdump ${pid} outlived the SIGKILLed reader`);
    });
  }
});
