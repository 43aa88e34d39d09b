// `.ci/run` runs on a fresh Debian machine: every program the code or the tests start
// must come from a package on its apt-get line, or CI fails there while passing on a
// machine where someone installed it by hand (tcpdump was such a program). The programs
// are found in the sources (argv heads of spawn/exec calls and the agent's defaults),
// so a new one fails this test until it is listed here and installed by .ci/run.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const ROOT = join(import.meta.dirname, "../..");

/** Program -> the Debian package that ships it. */
const PACKAGE: Record<string, string> = {
  nft: "nftables",
  iptables: "iptables",
  "iptables-restore": "iptables",
  "iptables-save": "iptables",
  ip6tables: "iptables",
  "ip6tables-restore": "iptables",
  "ip6tables-save": "iptables",
  "iptables-nft": "iptables",
  "iptables-nft-restore": "iptables",
  "iptables-nft-save": "iptables",
  ipset: "ipset",
  ip: "iproute2",
  ss: "iproute2",
  tcpdump: "tcpdump",
  conntrack: "conntrack",
  hping3: "hping3",
  iperf3: "iperf3",
  socat: "socat",
  nc: "netcat-openbsd",
  python3: "python3",
  "/usr/bin/python3": "python3",
  scapy: "python3-scapy",
  sysctl: "procps",
  setpriv: "util-linux",
  unshare: "util-linux",
  // The sandbox of `palisade import --execute` (src/cli/execute.ts) runs these inside its shell.
  mount: "mount",
  awk: "mawk",
  nsenter: "util-linux",
  // test/kernel/import-execute-containment.test.ts: a loop device on a scratch file stands for a disk.
  losetup: "mount",
  psql: "postgresql-client",
  "redis-server": "redis-server",
  promtool: "prometheus",
  "/usr/bin/chromium": "chromium",
  sleep: "coreutils",
  // test/kernel/import-ct-helper.test.ts reads /proc/net/nf_conntrack_expect inside a namespace.
  cat: "coreutils",
  // bench/footprint.ts reads CLK_TCK (the unit of /proc/PID/stat's CPU times).
  getconf: "libc-bin",
  tar: "tar",
  sh: "dash",
  bash: "bash",
  protoc: "protobuf-compiler",
};
/** Essential on every Debian system: never on an apt-get line. */
const ESSENTIAL = new Set(["coreutils", "util-linux", "tar", "dash", "bash", "libc-bin"]);
/** `run([...])` in the CLI tests runs bin/palisade: its verbs and flags are not programs. */
const VERBS = new Set(readdirSync(join(ROOT, "src/cli/commands")).map((f) => f.replace(/\.ts$/, "")));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "generated" && e.name !== "node_modules") out.push(...sources(p));
    } else if (/\.(ts|py)$/.test(e.name)) out.push(p);
  }
  return out;
}

/** Programs started by the code: argv heads of spawn/exec calls, the agent's program defaults, Python imports of scapy. */
export function programsIn(text: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /\b(?:spawn|spawnSync|execFile|execFileSync)\(\s*"([^"]+)"/g,
    /\.(?:exec|background)\(\s*[\w.]+\s*,\s*\[\s*"([^"]+)"/g,
    /\brun\(\s*\[\s*"([^"]+)"/g,
    /Path\s*\?\?\s*"([^"]+)"/g,
    /\b(?:program|file):\s*"([a-z0-9/_.-]+)"/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) found.add(m[1]!);
  if (/from scapy/.test(text)) found.add("scapy");
  return [...found];
}

function aptLine(): Set<string> {
  const ci = readFileSync(join(ROOT, ".ci/run"), "utf8").replace(/\\\n/g, " ");
  const line = /apt-get install ([^\n]*)/.exec(ci)?.[1] ?? "";
  return new Set(line.split(/\s+/).filter((w) => /^[a-z0-9][a-z0-9.+-]*$/.test(w)));
}

describe(".ci/run installs every program the code and the tests run", () => {
  it("finds programs in the sources", () => {
    assert.deepEqual(
      programsIn(`spawn("ip", a); lab.exec(ns, ["conntrack", "-L"]); o.tcpdumpPath ?? "tcpdump"`).sort(),
      ["conntrack", "ip", "tcpdump"],
    );
  });

  it("each program found has a known package, and that package is on the apt-get line", () => {
    const apt = aptLine();
    assert.ok(apt.has("nftables"), "the apt-get line was not found in .ci/run");
    const missing: string[] = [];
    for (const file of [...sources("src"), ...sources("test"), ...sources("bench")]) {
      for (const prog of programsIn(readFileSync(join(ROOT, file), "utf8"))) {
        if (
          prog === process.execPath ||
          prog.includes("palisade") ||
          prog === "not-mine" ||
          prog.startsWith("-") ||
          VERBS.has(prog)
        )
          continue;
        const pkg = PACKAGE[prog];
        if (!pkg) missing.push(`${file}: "${prog}" is started but has no package in test/unit/ci-packages.test.ts`);
        else if (!ESSENTIAL.has(pkg) && !apt.has(pkg))
          missing.push(`${file}: "${prog}" needs the Debian package ${pkg}, not installed by .ci/run`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it("the agent's own programs are installed (nft, tcpdump, conntrack, ip)", () => {
    const apt = aptLine();
    for (const p of ["nft", "tcpdump", "conntrack", "ip"]) assert.ok(apt.has(PACKAGE[p]!), `${p} (${PACKAGE[p]})`);
  });
});
