// `palisade import --execute`: scripts with shell control flow run in the sandbox (namespaces,
// read-only host, recorders for iptables & co.) and what they recorded is imported with the
// script's line numbers. Hostile scripts: an endless loop is killed at the time limit with
// everything it started; writes to the host do not land; output is bounded. Needs root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { executeScript } from "../../src/cli/execute.ts";
import { importPolicy, importRecorded } from "../../src/engine/import/index.ts";

const BIN = join(import.meta.dirname, "../../bin/palisade");

const SCRIPT = `#!/bin/sh
IPT=$(command -v iptables)
OPEN="22 80 443"
allow() {
  $IPT -A INPUT -p tcp --dport "$1" -j ACCEPT
}
case "$1" in
  start)
    $IPT -P INPUT DROP
    for p in $OPEN; do allow $p; done
    if [ -n "$IPT" ] && true; then /sbin/iptables -A INPUT -i lo -j ACCEPT; fi
    ipset create friends hash:ip
    ipset add friends 192.0.2.7
    iptables -A INPUT -m set --match-set friends src -j ACCEPT
    printf '*filter\\n-A INPUT -p udp --dport 53 -j ACCEPT\\nCOMMIT\\n' | iptables-restore --noflush
    modprobe nf_conntrack
    sysctl -w net.ipv4.ip_forward=1
    iptables -A INPUT -m comment --comment "links=$(ip -o link show | wc -l)" -j DROP
    ;;
  *) echo "usage: $0 start"; exit 1 ;;
esac
`;

test("a script with functions, loops, case and substitutions is recorded with its line numbers and imported", async () => {
  const run = await executeScript(SCRIPT, { args: ["start"], timeoutMs: 20_000 });
  assert.equal(run.timedOut, false);
  assert.equal(run.exitCode, 0, run.output);
  const byProgram = run.commands.map((c) => `${c.line} ${c.program} ${c.args.join(" ")}`);
  assert.deepEqual(byProgram.slice(0, 5), [
    "9 iptables -P INPUT DROP",
    "5 iptables -A INPUT -p tcp --dport 22 -j ACCEPT",
    "5 iptables -A INPUT -p tcp --dport 80 -j ACCEPT",
    "5 iptables -A INPUT -p tcp --dport 443 -j ACCEPT",
    "11 iptables -A INPUT -i lo -j ACCEPT",
  ]);
  // No network: the sandbox's namespace has only its loopback interface.
  assert.ok(byProgram.includes("18 iptables -A INPUT -m comment --comment links=1 -j DROP"), byProgram.join("\n"));
  const restore = run.commands.find((c) => c.program === "iptables-restore");
  assert.equal(restore?.input, "*filter\n-A INPUT -p udp --dport 53 -j ACCEPT\nCOMMIT\n");

  const r = importRecorded(run.commands);
  assert.deepEqual(r.errors, []);
  const input = r.policy!.chains.input!;
  assert.equal(input.policy, "drop");
  // iptables' DROP is IPv4's: the first rule lets IPv6 pass, then the script's seven rules.
  assert.deepEqual(input.rules[0]!.match, { family: "ipv6" });
  assert.equal(input.rules.length, 8);
  assert.deepEqual(r.policy!.sets.friends?.elements, ["192.0.2.7"]);
  assert.equal(input.rules[5]!.match?.saddr, "@friends");
  const lines = r.report.map((l) => l.line);
  assert.deepEqual(
    lines,
    [...lines].sort((a, b) => a - b),
    "report in script order",
  );
  assert.ok(
    r.report.some(
      (l) => l.line === 15 && l.text.startsWith("iptables-restore <<< -A INPUT") && l.status === "imported",
    ),
  );
  assert.ok(r.report.some((l) => l.line === 16 && l.status === "skipped" && /modprobe/.test(l.reason ?? "")));
});

test("text import of shell control flow is refused with a pointer at --execute", () => {
  for (const src of [
    "if true; then iptables -A INPUT -j ACCEPT; fi",
    "for p in 1 2; do\niptables -A INPUT -j ACCEPT\ndone",
    "IPT=$(which iptables)\n$IPT -A INPUT -j ACCEPT",
  ]) {
    const r = importPolicy("iptables", src);
    assert.ok(r.errors.length > 0, src);
    assert.match(r.errors[0]!.message, /palisade import --execute/, src);
  }
});

test("an endless loop is killed at the time limit, with every process it started", async () => {
  const marker = `palisade-hostile-${process.pid}`;
  const run = await executeScript(
    `iptables -A INPUT -j ACCEPT\n(exec -a ${marker} sleep 1000) &\nwhile :; do :; done\n`,
    { timeoutMs: 1500 },
  );
  assert.equal(run.timedOut, true);
  assert.equal(run.exitCode, null);
  assert.equal(run.commands.length, 1, "what ran before the loop was recorded");
  // Bounded wait for the kernel to reap the namespace.
  let left: string[] = [];
  for (let i = 0; i < 50; i++) {
    left = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && readCmdline(p).includes(marker));
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(left, [], "no process of the script survives");
});

function readCmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

test("writes outside the sandbox do not land on the host; output is bounded", async () => {
  const dir = mkdtempSync(join(tmpdir(), `palisade-exec-test-${process.pid}-`));
  try {
    const target = join(dir, "written");
    const run = await executeScript(
      `echo x > ${target}; touch /etc/palisade-exec-${process.pid}; mkdir -p /var/lib/palisade-exec-${process.pid}; echo y > /tmp/ok && cat /tmp/ok\nhead -c 1000000 /dev/zero | tr '\\0' a\niptables -A INPUT -j ACCEPT\n`,
      { timeoutMs: 20_000, maxOutputBytes: 4096 },
    );
    assert.equal(run.timedOut, false);
    assert.equal(existsSync(target), false);
    assert.equal(existsSync(`/etc/palisade-exec-${process.pid}`), false);
    assert.equal(existsSync(`/var/lib/palisade-exec-${process.pid}`), false);
    assert.match(run.output, /Read-only file system/);
    assert.match(run.output, /^y$/m, "the sandbox's own /tmp is writable");
    assert.equal(run.outputTruncated, true);
    assert.ok(Buffer.byteLength(run.output) <= 4096);
    assert.equal(run.commands.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the CLI: palisade import --execute FILE --arg start prints the document and the report by script line", () => {
  const dir = mkdtempSync(join(tmpdir(), `palisade-exec-cli-${process.pid}-`));
  try {
    const file = join(dir, "fw.sh");
    writeFileSync(file, SCRIPT);
    const r = spawnSync(BIN, ["import", "--execute", file, "--arg", "start"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /saddr: "@friends"/);
    assert.match(r.stderr, /^\s*5\s+imported\s+iptables -A INPUT -p tcp --dport 22/m);
    const bad = spawnSync(BIN, ["import", file], { encoding: "utf8", timeout: 60_000 });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--execute/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
