// `palisade import --execute` against a hostile script: the script runs as nobody without any
// capability, so what root could do inside namespaces (remount the host read-write, write a
// block device, load a module, write a kernel sysctl, unmount /run to reach the host's network
// namespaces) fails. Each test asserts on the host's state, not on what the script printed.
// The CLI reads only the input files the recorder makes, never through a forged path or a
// symlink. Needs root (it builds the sandbox).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { executeScript, SandboxError } from "../../src/cli/execute.ts";

const BIN = join(import.meta.dirname, "../../bin/palisade");
const RUN = { timeoutMs: 20_000 };

test("the script runs as nobody with no capability, and the recorders still record", async () => {
  const run = await executeScript(
    "id -u; grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status; grep NoNewPrivs /proc/self/status\n" +
      "printf '*filter\\nCOMMIT\\n' | iptables-restore\niptables -A INPUT -j ACCEPT\n",
    RUN,
  );
  assert.equal(run.exitCode, 0, run.output);
  assert.match(run.output, /^65534$/m);
  for (const set of ["CapEff", "CapPrm", "CapBnd", "CapAmb"])
    assert.match(run.output, new RegExp(`^${set}:\\s*0+$`, "m"), set);
  assert.match(run.output, /^NoNewPrivs:\s*1$/m);
  assert.deepEqual(
    run.commands.map((c) => [c.program, c.input ?? null]),
    [
      ["iptables-restore", "*filter\nCOMMIT\n"],
      ["iptables", null],
    ],
  );
});

test("remounting / read-write (directly or from a new user namespace) does not let the script write the host", async () => {
  const marks = ["/etc", "/usr", "/var/lib"].map((d) => `${d}/palisade-exec-remount-${process.pid}`);
  try {
    const run = await executeScript(
      [
        "mount -o remount,bind,rw /; mount -o remount,rw /",
        ...marks.map((m) => `touch ${m}`),
        // An unprivileged user namespace gets capabilities over its own mount namespace only;
        // the host mounts it inherits stay locked read-only.
        `unshare -Urm sh -c 'mount -o remount,rw /; mount -o remount,bind,rw /etc; umount -l /etc; touch ${marks[0]}'`,
        "iptables -A INPUT -j ACCEPT",
      ].join("\n"),
      RUN,
    );
    assert.equal(run.timedOut, false);
    for (const m of marks) assert.equal(existsSync(m), false, `${m} landed on the host`);
    assert.equal(run.commands.length, 1, run.output);
  } finally {
    for (const m of marks) rmSync(m, { force: true });
  }
});

test("a block device of the host cannot be written; /dev/mem is not there", async () => {
  const dir = mkdtempSync(join(tmpdir(), `palisade-exec-dev-${process.pid}-`));
  const backing = join(dir, "disk.img");
  writeFileSync(backing, Buffer.alloc(1 << 20));
  // A loop device on a scratch file stands for a disk: if the write got through, only this file changes.
  const loop = execFileSync("losetup", ["--find", "--show", backing], { encoding: "utf8" }).trim();
  try {
    const [major, minor] = readFileSync(`/sys/class/block/${loop.slice(5)}/dev`, "utf8")
      .trim()
      .split(":");
    const run = await executeScript(
      [
        `printf PWNED > ${loop}`,
        `printf PWNED | dd of=${loop} conv=notrunc`,
        `mknod /tmp/disk b ${major} ${minor} && printf PWNED > /tmp/disk`,
        "head -c 16 /dev/mem >/dev/null && echo MEM-READABLE",
        "ls /dev",
      ].join("\n"),
      RUN,
    );
    assert.equal(run.timedOut, false);
    assert.doesNotMatch(run.output, /MEM-READABLE/);
    execFileSync("losetup", ["--detach", loop]);
    assert.equal(
      readFileSync(backing).every((b) => b === 0),
      true,
      "the host's block device was written",
    );
    // The private /dev holds only the harmless nodes.
    assert.deepEqual(
      run.output
        .split("\n")
        .filter((l) => /^[a-z]+$/.test(l))
        .sort(),
      ["fd", "full", "null", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"],
    );
  } finally {
    spawnSync("losetup", ["--detach", loop]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("loading a kernel module by the real binary's path or by the syscall is refused", async () => {
  const modules = () =>
    existsSync("/proc/modules")
      ? readFileSync("/proc/modules", "utf8")
          .split("\n")
          .map((l) => l.split(" ")[0])
          .sort()
      : [];
  const before = modules();
  const run = await executeScript(
    [
      // modprobe/insmod through kmod under any of its names and paths, where installed.
      "for b in /bin/kmod /usr/bin/kmod /sbin/insmod /usr/sbin/insmod; do [ -x $b ] && $b insmod /mnt/script.sh; done",
      // finit_module(2) (313 on x86_64) directly: EPERM without CAP_SYS_MODULE.
      `perl -e 'open(my $f, "<", "/mnt/script.sh") or die; my $p = ""; my $r = syscall(313, fileno($f), $p, 0); print "finit_module=$r errno=", $!+0, "\\n"'`,
    ].join("\n"),
    RUN,
  );
  assert.equal(run.timedOut, false);
  // Without module support (CONFIG_MODULES=n) the kernel answers ENOSYS (38) before any check.
  const m = /^finit_module=(-?\d+) errno=(\d+)$/m.exec(run.output);
  assert.ok(m, run.output);
  assert.equal(m[1], "-1");
  assert.ok(["1", "38"].includes(m[2]!), `errno ${m[2]}`);
  assert.deepEqual(modules(), before);
});

test("kernel sysctls cannot be written, even after remounting /proc", async () => {
  const knob = "/proc/sys/kernel/printk_ratelimit_burst";
  const before = readFileSync(knob, "utf8");
  try {
    const run = await executeScript(
      `mount -o remount,rw /proc; mount -t proc proc /tmp; echo ${Number(before) + 7} > ${knob}; echo ${Number(before) + 7} > /tmp/sys/kernel/printk_ratelimit_burst\n`,
      RUN,
    );
    assert.equal(run.timedOut, false);
    assert.equal(readFileSync(knob, "utf8"), before);
  } finally {
    if (readFileSync(knob, "utf8") !== before) writeFileSync(knob, before);
  }
});

test("unmounting /run does not reach the host's network namespaces", async () => {
  const ns = `palisade-exec-${process.pid}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    const run = await executeScript(
      [
        "umount /run; umount -l /run",
        `nsenter --net=/run/netns/${ns} ip link add pal0 type dummy`,
        `nsenter --net=/run/netns/${ns} ip link set lo up`,
        `ip netns exec ${ns} ip link set lo up`,
      ].join("\n"),
      RUN,
    );
    assert.equal(run.timedOut, false);
    const links = execFileSync("ip", ["-n", ns, "-o", "link", "show"], { encoding: "utf8" });
    assert.doesNotMatch(links, /pal0/);
    assert.match(links, /^1: lo: <LOOPBACK>/m, "lo of the host's namespace was set up");
  } finally {
    spawnSync("ip", ["netns", "del", ns]);
  }
});

// The log and the input files are in a directory the script owns: it can forge records.
const FORGE = (input: string) =>
  `printf 'REC\\000%s\\000%s\\000%s\\000%s\\000' 1 iptables-restore 0 '${input}' >> /mnt/rec/log\n`;

test("a forged record naming a host file through .. is refused, not read", async () => {
  await assert.rejects(
    executeScript(`iptables -A INPUT -j ACCEPT\n${FORGE("/mnt/rec/../../../../etc/shadow")}`, RUN),
    (e: unknown) => e instanceof SandboxError && e.code === "execute_bad_record" && !/root:/.test(e.message),
  );
});

test("a record whose input file is a symlink to a host file, or a FIFO, is refused, not read", async () => {
  for (const make of ["ln -s /etc/shadow /mnt/rec/in.AbC123", "mkfifo /mnt/rec/in.AbC123"]) {
    await assert.rejects(
      executeScript(`${make}\n${FORGE("/mnt/rec/in.AbC123")}`, RUN),
      (e: unknown) => e instanceof SandboxError && e.code === "execute_bad_record",
      make,
    );
  }
  // The log itself replaced by a symlink, or removed.
  for (const make of [
    "rm /mnt/rec/log && ln -s /etc/shadow /mnt/rec/log",
    "rm /mnt/rec/log",
    FORGE("/mnt/rec/in.nofile"),
  ]) {
    await assert.rejects(
      executeScript(`${make}\n`, RUN),
      (e: unknown) => e instanceof SandboxError && e.code === "execute_bad_record",
      make,
    );
  }
});

test("without CAP_SYS_ADMIN the CLI says root is needed instead of unshare's error", () => {
  const dir = mkdtempSync(join(tmpdir(), `palisade-exec-noroot-${process.pid}-`));
  try {
    chmodSync(dir, 0o755);
    const file = join(dir, "fw.sh");
    writeFileSync(file, "iptables -A INPUT -j ACCEPT\n", { mode: 0o644 });
    const r = spawnSync(
      "setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        BIN,
        "import",
        "--execute",
        file,
      ],
      { encoding: "utf8", timeout: 60_000, env: { ...process.env, HOME: dir } },
    );
    assert.equal(r.status, 6, r.stderr);
    assert.match(r.stderr, /^error: execute_needs_root: import --execute needs root \(CAP_SYS_ADMIN\)/m);
    assert.doesNotMatch(r.stderr, /unshare/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
