// footprint: what Palisade costs on a host (issue 11), each figure beside a baseline
// measured in the same run.
//
//   start-up   `node -e 0` (the floor of any Node process) vs the built CLI
//              (bin/palisade -> dist/cli): `palisade --version`, `palisade render small.yaml`
//              (bench/fixtures/small.yaml, the README's policy); and the same two run
//              from the TypeScript sources through tsx (the development fallback, and
//              how every command ran before the build). Median wall time, CPU time
//              (user + sys) and peak RSS over BENCH_RUNS runs, interleaved.
//   agent RSS  the standalone agent bundle (dist/agent/palisade-agent.cjs, what the
//              tarball ships) vs an idle `node` (setInterval) and vs the agent from the
//              sources through tsx: at rest after enrolling and applying small.yaml; peak
//              during a 10k-rule apply; peak while its collector reads 65,536 accounting
//              elements (a /16 table, every address with a counter). Peak = VmHWM, reset
//              through /proc/PID/clear_refs before each phase. The agent manages a
//              throwaway namespace (--netns) and talks to a real grpc-js peer in this
//              process (test/support/test-api.ts).
//   disk       the agent's installed footprint: what the tarball unpacks to (no
//              node_modules), vs the whole server install's node_modules.
//
// Needs root (namespaces, nftables). `npm run build` first (npm test and npm ci do).
// Usage: npm run bench -- bench/footprint.ts   (BENCH_RUNS=15 by default; BENCH_ONLY=disk,
// startup or agent runs one part; BENCH_ONLY=rest only the agent's resting RSS, see restRss)
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { POLICY_WORKER_IDLE_MS } from "../src/agent/policy-worker.ts";
import { TestApi } from "../test/support/test-api.ts";
import { createLab, type NetnsLab } from "../test/support/netns.ts";
import { unitAllocatorEnv, unitNodeFlags } from "../test/support/unit-privileges.ts";
import { linearRules } from "./lib/policies.ts";
import { BIG_ACCOUNTING, fillBigAccounting } from "./lib/big-accounting.ts";
import { note } from "./lib/progress.ts";
import { machine, median, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const ROOT = join(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const NODE = process.execPath;
const SMALL = join(ROOT, "bench/fixtures/small.yaml");
const BUNDLE = process.env.BENCH_AGENT_BUNDLE ?? join(ROOT, "dist/agent/palisade-agent.cjs");
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
const MB = 1024 * 1024;
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
const mb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / MB).toFixed(1)} MB` : "n/a");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- start-up

interface Run {
  wallMs: number;
  cpuMs: number;
  rssBytes: number;
}

/** One run: wall time here; CPU and peak RSS from GNU time when it is installed. */
function runOnce(argv: string[]): Run {
  const t0 = process.hrtime.bigint();
  const r = TIME
    ? spawnSync(TIME, ["-f", "%U %S %M", ...argv], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "ignore", "pipe"] })
    : spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "ignore", "pipe"] });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr}`);
  const m = TIME ? /(\d+\.\d+) (\d+\.\d+) (\d+)\s*$/.exec(r.stderr) : null;
  return { wallMs, cpuMs: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN, rssBytes: m ? Number(m[3]) * 1024 : NaN };
}

function startup(): string {
  const cases: [string, string[]][] = [
    ["node -e 0 (baseline)", [NODE, "-e", "0"]],
    ["palisade --version", [NODE, join(ROOT, "bin/palisade"), "--version"]],
    ["palisade render small.yaml", [NODE, join(ROOT, "bin/palisade"), "render", SMALL]],
    ["tsx: palisade --version", [NODE, "--import", "tsx", join(ROOT, "src/cli/main.ts"), "--version"]],
    ["tsx: palisade render small.yaml", [NODE, "--import", "tsx", join(ROOT, "src/cli/main.ts"), "render", SMALL]],
  ];
  for (const [, argv] of cases) runOnce(argv); // warm the page cache
  const runs = new Map<string, Run[]>(cases.map(([k]) => [k, []]));
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 ? [...cases].reverse() : cases;
    for (const [k, argv] of order) runs.get(k)!.push(runOnce(argv));
  }
  const base = runs.get(cases[0]![0])!;
  const bw = median(base.map((r) => r.wallMs));
  const bc = median(base.map((r) => r.cpuMs));
  const rows = [["command", "wall (median)", "x node -e 0", "CPU (median)", "x node -e 0", "peak RSS"]];
  for (const [k] of cases) {
    const rs = runs.get(k)!;
    const w = median(rs.map((r) => r.wallMs));
    const c = median(rs.map((r) => r.cpuMs));
    rows.push([
      k,
      `${w.toFixed(1)} ms`,
      ratio(w, bw),
      `${c.toFixed(0)} ms`,
      ratio(c, bc),
      mb(median(rs.map((r) => r.rssBytes))),
    ]);
  }
  return `start-up, ${RUNS} runs each, interleaved${TIME ? "" : " (no /usr/bin/time: CPU and RSS n/a)"}\n${table(rows)}`;
}

// ---------------------------------------------------------------- agent RSS

function status(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}
/** utime + stime of a process (all its threads), in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name: state is [0], utime [11], stime [12].
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}
/** smaps_rollup's RSS split (file-backed vs anonymous) and the thread count of a process. */
function smapsLine(pid: number): string {
  return `${readFileSync(`/proc/${pid}/smaps_rollup`, "utf8")
    .split("\n")
    .filter((l) => /^(Rss|Anonymous|Private_Clean|Shared_Clean):/.test(l))
    .map((l) => l.replace(/\s+/g, " "))
    .join(", ")}; threads ${readdirSync(`/proc/${pid}/task`).length}`;
}
/** Reset the peak (VmHWM) to the current RSS. */
const resetPeak = (pid: number) => writeFileSync(`/proc/${pid}/clear_refs`, "5");

async function restingRss(pid: number, samples = 5): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) {
    await sleep(1000);
    xs.push(status(pid).rss);
  }
  return median(xs);
}

interface AgentFigures {
  rest: number;
  apply10kPeak: number;
  apply10kMs: number;
  /** The agent process's own CPU (user + sys, its threads included; nft's not) for that apply. */
  apply10kCpuMs: number;
  read65kPeak: number;
  read65kRows: number;
  /** The agent's CPU from the fill to 6.5 s after the batch with the 65k rows (four or so collections). */
  read65kCpuMs: number;
}

async function agentPhases(
  lab: NetnsLab,
  label: string,
  argvOf: (server: string, stateDir: string, ns: string, enroll: string[]) => string[],
  env: Record<string, string> = {},
  restOnly = false,
): Promise<AgentFigures> {
  const ns = await lab.addNamespace();
  const api = new TestApi();
  await api.start();
  const stateDir = mkdtempSync(join(tmpdir(), "palisade-bench-footprint-"));
  let child: ChildProcess | undefined;
  let err = "";
  try {
    // The token pins the test CA: the agent enrolls and connects with mutual TLS, as shipped.
    const argv = argvOf(`127.0.0.1:${api.port}`, stateDir, ns, api.enrollArgs());
    child = spawn(argv[0]!, argv.slice(1), {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, ...env },
    });
    child.stderr!.on("data", (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    const pid = child.pid!;
    await api
      .waitFor((r) => r.find((x) => x.msg.hello), 60_000)
      .catch((e) => {
        throw new Error(`${label}: no Hello (${(e as Error).message})\n${err}`);
      });
    let n = 0;
    const apply = async (policy: unknown) => {
      const t = `t${++n}`;
      api.send({
        desiredState: {
          deploymentId: `d${n}`,
          targetId: t,
          version: { ruleset: "bench", version: n, checksum: `c${n}` },
          policyJson: JSON.stringify(policy),
          confirmTimeoutSeconds: 300,
        },
      });
      const r = await api.waitFor(
        (rs) =>
          rs.find((x) => x.msg.applyResult?.targetId === t && x.msg.applyResult.status !== "APPLY_STATUS_APPLYING"),
        300_000,
      );
      if (r.msg.applyResult.status !== "APPLY_STATUS_APPLIED")
        throw new Error(`${label}: apply ${t}: ${JSON.stringify(r.msg.applyResult)}`);
    };

    // BENCH_SMAPS=1: also what the agent holds after its Hello, before any apply (and render worker).
    if (process.env.BENCH_SMAPS) {
      await sleep(3000);
      note(`${label}: before the first apply: ${smapsLine(pid)}`);
    }
    note(`${label}: at rest`);
    await apply(parseYaml(readFileSync(SMALL, "utf8")));
    // At rest = after the render worker has stopped (it idles POLICY_WORKER_IDLE_MS).
    await sleep(POLICY_WORKER_IDLE_MS + 3000);
    const rest = await restingRss(pid);
    // BENCH_SMAPS=1: what the resting RSS is made of (file-backed pages vs anonymous).
    if (process.env.BENCH_SMAPS) note(`${label}: ${smapsLine(pid)}`);
    // BENCH_SMAPS_DUMP=DIR: the whole /proc/PID/smaps at rest, one file per agent.
    if (process.env.BENCH_SMAPS_DUMP)
      writeFileSync(
        join(process.env.BENCH_SMAPS_DUMP, `smaps-${pid}.txt`),
        `${label}\n${readFileSync(`/proc/${pid}/smaps`, "utf8")}`,
      );
    if (process.env.BENCH_HEAPSNAP) {
      process.kill(pid, "SIGUSR2");
      await sleep(8000);
    }
    if (restOnly)
      return {
        rest,
        apply10kPeak: NaN,
        apply10kMs: NaN,
        read65kPeak: NaN,
        read65kRows: 0,
        apply10kCpuMs: NaN,
        read65kCpuMs: NaN,
      };

    note(`${label}: 10k-rule apply`);
    resetPeak(pid);
    const t10k = performance.now();
    const c10k = cpuMs(pid);
    await apply(linearRules(10_000));
    const apply10kMs = performance.now() - t10k;
    const apply10kCpuMs = cpuMs(pid) - c10k;
    const apply10kPeak = status(pid).hwm;

    note(`${label}: 65,536 accounting elements`);
    await apply(BIG_ACCOUNTING);
    await fillBigAccounting(lab, ns);
    resetPeak(pid);
    const c65k = cpuMs(pid);
    const seen = api.received.length;
    const big = await api
      .waitFor((rs) => rs.slice(seen).find((x) => (x.msg.telemetry?.accounting?.length ?? 0) >= 65_536), 300_000)
      .catch((e) => {
        throw new Error(
          `${label}: no telemetry batch with the 65k rows (${(e as Error).message.slice(0, 300)})\n${err}`,
        );
      });
    // Three more collections read all 65k elements (every 2 s; zero deltas, so no batch).
    await sleep(6_500);
    const read65kPeak = status(pid).hwm;
    const read65kCpuMs = cpuMs(pid) - c65k;
    return {
      rest,
      apply10kPeak,
      apply10kMs,
      apply10kCpuMs,
      read65kPeak,
      read65kCpuMs,
      read65kRows: big.msg.telemetry.accounting.length,
    };
  } finally {
    if (child?.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGKILL");
    await api.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const agentFlags = (server: string, stateDir: string, ns: string, enroll: string[]) => [
  "--server",
  server,
  ...enroll,
  "--state-dir",
  stateDir,
  "--name",
  "bench-footprint",
  "--netns",
  ns,
  "--telemetry-interval",
  "2",
  "--drift-interval",
  "0",
  "--log-level",
  "warn",
];

/** The node flags and allocator settings of the shipped unit (BENCH_AGENT_FLAGS / BENCH_AGENT_ENV to try others). */
function unitSettings(): { nodeFlags: string[]; agentEnv: Record<string, string> } {
  const unit = readFileSync(join(ROOT, "deploy/palisade-agent.service"), "utf8");
  const nodeFlags =
    process.env.BENCH_AGENT_FLAGS !== undefined
      ? process.env.BENCH_AGENT_FLAGS.split(" ").filter(Boolean)
      : unitNodeFlags(unit);
  // BENCH_AGENT_ENV="K=V ..." to try others, "" for none.
  const agentEnv =
    process.env.BENCH_AGENT_ENV !== undefined
      ? Object.fromEntries(
          process.env.BENCH_AGENT_ENV.split(" ")
            .filter(Boolean)
            .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
        )
      : unitAllocatorEnv(unit);
  return { nodeFlags, agentEnv };
}

async function idleNodeRss(): Promise<number> {
  const idle = spawn(NODE, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  await sleep(1500);
  const rss = await restingRss(idle.pid!, 3);
  idle.kill("SIGKILL");
  return rss;
}

/**
 * BENCH_ONLY=rest: only the resting figure, BENCH_RUNS rounds (default 3), each round an
 * idle node and then every bundle of BENCH_REST_BUNDLES (space-separated paths, default
 * the built one; to compare builds in one run), in alternating order.
 */
async function restRss(lab: NetnsLab): Promise<string> {
  const { nodeFlags, agentEnv } = unitSettings();
  // BENCH_REST_VARIANTS (JSON, `[{ "label", "bundle"?, "flags"?, "env"? }]`) compares node flags
  // or allocator settings in the same run: `flags` and `env` are added to the unit's.
  const variants: { label: string; bundle: string; flags: string[]; env: Record<string, string> }[] = process.env
    .BENCH_REST_VARIANTS
    ? (
        JSON.parse(process.env.BENCH_REST_VARIANTS) as {
          label: string;
          bundle?: string;
          flags?: string[];
          env?: Record<string, string>;
        }[]
      ).map((v) => ({ label: v.label, bundle: v.bundle ?? BUNDLE, flags: v.flags ?? [], env: v.env ?? {} }))
    : (process.env.BENCH_REST_BUNDLES ?? BUNDLE)
        .split(" ")
        .filter(Boolean)
        .map((b) => ({ label: b, bundle: b, flags: [], env: {} }));
  const rounds = Number(process.env.BENCH_RUNS ?? 3);
  const idle: number[] = [];
  const rest = new Map<string, number[]>(variants.map((v) => [v.label, []]));
  for (let i = 0; i < rounds; i++) {
    idle.push(await idleNodeRss());
    for (const v of i % 2 ? [...variants].reverse() : variants) {
      const f = await agentPhases(
        lab,
        `${v.label} (round ${i + 1})`,
        (sv, d, ns, t) => [NODE, ...nodeFlags, ...v.flags, v.bundle, ...agentFlags(sv, d, ns, t)],
        { ...agentEnv, ...v.env },
        true,
      );
      rest.get(v.label)!.push(f.rest);
    }
  }
  const rows = [["agent at rest (enrolled, small.yaml applied)", "median", "samples"]];
  rows.push(["idle node (floor)", mb(median(idle)), idle.map(mb).join(" ")]);
  for (const [b, xs] of rest) rows.push([b, mb(median(xs)), xs.map(mb).join(" ")]);
  return `agent RSS at rest, ${rounds} rounds, node flags ${nodeFlags.join(" ")}${Object.entries(agentEnv)
    .map(([k, v]) => ` ${k}=${v}`)
    .join("")}\n${table(rows)}`;
}

async function agentRss(lab: NetnsLab): Promise<string> {
  const idleRss = await idleNodeRss();
  const { nodeFlags, agentEnv } = unitSettings();
  const bundle = await agentPhases(
    lab,
    "bundle",
    (s, d, ns, t) => [NODE, ...nodeFlags, BUNDLE, ...agentFlags(s, d, ns, t)],
    agentEnv,
  );
  const tsx = process.env.BENCH_NO_TSX
    ? bundle
    : await agentPhases(lab, "tsx", (s, d, ns, t) => [
        NODE,
        "--import",
        "tsx",
        join(ROOT, "src/cli/main.ts"),
        "agent",
        ...agentFlags(s, d, ns, t),
      ]);
  const rows = [
    [
      "agent RSS",
      `bundle (dist/agent)${nodeFlags.length ? ` ${nodeFlags.join(" ")}` : ""}${Object.entries(agentEnv)
        .map(([k, v]) => ` ${k}=${v}`)
        .join("")}`,
      "tsx from sources",
      "idle node (floor)",
      "target",
    ],
    ["at rest (enrolled, small.yaml applied)", mb(bundle.rest), mb(tsx.rest), mb(idleRss), "<= 60 MB"],
    ["peak during a 10k-rule apply", mb(bundle.apply10kPeak), mb(tsx.apply10kPeak), "", "<= 120 MB"],
    [
      "  that apply, DesiredState to ApplyResult",
      `${(bundle.apply10kMs / 1000).toFixed(2)} s`,
      `${(tsx.apply10kMs / 1000).toFixed(2)} s`,
      "",
      "",
    ],
    [
      "  the agent's CPU for it (user + sys, nft not included)",
      `${(bundle.apply10kCpuMs / 1000).toFixed(2)} s`,
      `${(tsx.apply10kCpuMs / 1000).toFixed(2)} s`,
      "",
      "",
    ],
    [
      `peak reading ${bundle.read65kRows.toLocaleString("en-US")} accounting elements`,
      mb(bundle.read65kPeak),
      mb(tsx.read65kPeak),
      "",
      "<= 150 MB",
    ],
    [
      "  the agent's CPU meanwhile (first batch + 3 more reads)",
      `${(bundle.read65kCpuMs / 1000).toFixed(2)} s`,
      `${(tsx.read65kCpuMs / 1000).toFixed(2)} s`,
      "",
      "",
    ],
  ];
  return `agent memory (VmRSS median of 5 samples at rest; VmHWM after a reset for the peaks)\n${table(rows)}`;
}

// ---------------------------------------------------------------- disk

function du(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((n, e) => n + du(join(path, e)), 0);
}

function disk(): string {
  const work = mkdtempSync(join(tmpdir(), "palisade-bench-pack-"));
  try {
    const tgz = spawnSync(NODE, [join(ROOT, "scripts/pack-agent.mjs")], { cwd: ROOT, encoding: "utf8" }).stdout.trim();
    spawnSync("tar", ["-xzf", tgz, "-C", work]);
    const installed = du(work);
    const rows = [
      ["on disk", "size"],
      ["agent tarball (.tgz)", mb(statSync(tgz).size)],
      ["agent installed (unpacked tarball: bundle, proto, unit, install.sh)", mb(installed)],
      ["  of which the bundle", mb(statSync(BUNDLE).size)],
      ["server install: node_modules of this checkout (dev included)", mb(du(join(ROOT, "node_modules")))],
    ];
    return `disk (target: agent installed <= 15 MB)\n${table(rows)}`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main

if (!existsSync(BUNDLE) || !existsSync(join(ROOT, "dist/cli/main.cjs"))) {
  console.error("dist/ is missing: run `npm run build` first");
  process.exit(1);
}
console.log(`footprint — ${machine()}`);
console.log(NOISE_NOTE);
console.log();
const only = process.env.BENCH_ONLY; // disk | startup | agent (default: all)
if (!only || only === "disk") console.log(disk() + "\n");
if (!only || only === "startup") console.log(startup() + "\n");
if (only && only !== "agent" && only !== "rest") process.exit(0);
const lab = createLab();
try {
  console.log(only === "rest" ? await restRss(lab) : await agentRss(lab));
} finally {
  await lab.cleanup();
}
