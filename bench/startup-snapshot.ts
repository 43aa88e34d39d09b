// startup-snapshot: would a V8 start-up snapshot (`node --snapshot-blob`) bring `palisade
// render small.yaml` to at most twice `node -e 0` (issue 11)? An experiment, not shipped:
// the CLI does not use a snapshot (docs/build.md, "Start-up of the local verbs").
//
// For each node of BENCH_NODES (colon-separated binaries; default: the node running this),
// builds into a temporary directory a CommonJS bundle of the CLI with render and validate
// inside it (not in their own scripts), whose top level loads commander, zod, yaml and the
// engine and builds the policy schema, and whose deserialize-main function runs the CLI on
// process.argv; then two blobs with `node --snapshot-blob B --build-snapshot`: "cold" (that
// top level only) and "warm" (the build also renders scripts/warm-up.policy.yaml, so the
// blob holds the bytecode of what a render compiles and the schema parts it builds on
// first use). Then interleaved runs of: `node -e 0`; a blob of an empty program (the cost of
// a user snapshot alone); `palisade --version` and `palisade render small.yaml` through
// bin/palisade (dist/, with its V8 code cache; a Node the build did not run writes its cache
// in the warm-up runs here); the same from each blob (`node --snapshot-blob B bin/palisade
// ...`: the blob's main function runs, process.argv is that of bin/palisade); and the warm
// blob through a `#!/bin/sh` launcher that execs node with the flag. Checks that the
// snapshot's output is byte-identical to the plain one, and prints what a node does with a
// blob another node built.
//
// `npm run build` first. Usage: npm run bench -- bench/startup-snapshot.ts (BENCH_RUNS=31;
// BENCH_NODES="$(command -v node):$(bash scripts/node24.sh)/node" for Node 20 and 24).
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { note } from "./lib/progress.ts";
import { machine, median, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const ROOT = join(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 31);
const NODES = (process.env.BENCH_NODES ?? process.execPath).split(":").filter(Boolean);
const SMALL = join(ROOT, "bench/fixtures/small.yaml");
const BIN = join(ROOT, "bin/palisade");
const TIME = "/usr/bin/time";
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

// src/cli/run.ts's runCli(), run by the blob's deserialize-main function instead of at load.
const ENTRY = `
import { startupSnapshot } from "node:v8";
import { runCli } from "./run.ts";
import * as renderVerb from "./commands/render.ts";
import * as validateVerb from "./commands/validate.ts";
import { readPolicyFile } from "./policy-file.ts";
import { renderNft, validatePolicy } from "../engine/index.ts";

// Referenced, so that their top level (the policy schema) runs while the snapshot is built.
(globalThis as { __palisadeVerbs?: unknown }).__palisadeVerbs = [renderVerb.register, validateVerb.register];

if (process.env.PALISADE_SNAPSHOT_WARM === "1") {
  void readPolicyFile(${JSON.stringify(join(ROOT, "scripts/warm-up.policy.yaml"))}).then((p) => {
    const checked = p.ok ? validatePolicy(p.value, { target: "nftables" }) : undefined;
    if (!checked?.ok || !("policy" in checked) || !checked.policy || !renderNft(checked.policy).ok)
      throw new Error("the warm-up render failed");
  });
}
startupSnapshot.setDeserializeMainFunction(() => void runCli(process.argv.slice(2)));
`;

async function buildEntry(dir: string): Promise<string> {
  const out = join(dir, "entry.cjs");
  const pkg = (await import(join(ROOT, "package.json"), { with: { type: "json" } })).default as {
    dependencies?: Record<string, string>;
  };
  const bundled = new Set(["commander", "yaml", "zod", "fastify-type-provider-zod"]);
  await build({
    absWorkingDir: ROOT,
    stdin: { contents: ENTRY, resolveDir: join(ROOT, "src/cli"), sourcefile: "snapshot-entry.ts", loader: "ts" },
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: "error",
    outfile: out,
    external: Object.keys(pkg.dependencies ?? {}).filter((d) => !bundled.has(d)),
    // install-root.ts finds package.json from the module's URL: the bundle's as if in dist/cli.
    define: { "import.meta.url": JSON.stringify(pathToFileURL(join(ROOT, "dist/cli/main.cjs")).href) },
    plugins: [
      {
        name: "verbs",
        setup(b) {
          // render and validate are inside the bundle; the other verbs stay dist/'s modules.
          b.onResolve({ filter: /^\.\/commands\/[a-z-]+\.ts$/ }, (args) => {
            const verb = args.path.slice("./commands/".length, -".ts".length);
            if (!/[\\/]src[\\/]cli[\\/]program\.ts$/.test(args.importer) || verb === "render" || verb === "validate")
              return undefined;
            return { path: join(ROOT, `dist/cli/commands/${verb}.js`), external: true };
          });
        },
      },
    ],
  });
  return out;
}

interface Run {
  wallMs: number;
  cpuMs: number;
}

function runOnce(argv: string[]): Run {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(TIME, ["-f", "%U %S", ...argv], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "ignore", "pipe"],
  });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr}`);
  const m = /(\d+\.\d+) (\d+\.\d+)\s*$/.exec(r.stderr);
  return { wallMs, cpuMs: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN };
}

function stdoutOf(argv: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, "dist/cli/main.cjs"))) throw new Error("run `npm run build` first");
  if (!existsSync(TIME)) throw new Error(`${TIME} (GNU time) is needed for the CPU figures`);
  const dir = mkdtempSync(join(tmpdir(), "palisade-snapshot-"));
  try {
    const entry = await buildEntry(dir);
    writeFileSync(join(dir, "empty.cjs"), 'require("node:v8").startupSnapshot.setDeserializeMainFunction(() => {});\n');
    const blobs = NODES.map((node, i) => {
      const blob = (kind: string, script: string, warm: boolean) => {
        const file = join(dir, `blob-${i}-${kind}`);
        const r = spawnSync(node, ["--snapshot-blob", file, "--build-snapshot", script], {
          cwd: dir,
          encoding: "utf8",
          env: { ...process.env, PALISADE_SNAPSHOT_WARM: warm ? "1" : "0" },
        });
        if (r.status !== 0) throw new Error(`building ${file} with ${node}: ${r.stderr}`);
        return file;
      };
      return {
        empty: blob("empty", join(dir, "empty.cjs"), false),
        cold: blob("cold", entry, false),
        warm: blob("warm", entry, true),
      };
    });
    const lines: string[] = [machine(), ""];
    for (const [i, node] of NODES.entries()) {
      const b = blobs[i]!;
      const version = spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim();
      const launcher = join(dir, `launcher-${i}`);
      writeFileSync(launcher, `#!/bin/sh\nexec ${node} --snapshot-blob ${b.warm} ${BIN} "$@"\n`);
      chmodSync(launcher, 0o755);
      const plain = stdoutOf([node, BIN, "render", SMALL]);
      for (const blob of [b.cold, b.warm]) {
        const snap = stdoutOf([node, "--snapshot-blob", blob, BIN, "render", SMALL]);
        lines.push(
          `${version}: render from ${blob.endsWith("warm") ? "the warm" : "the cold"} blob: exit ${snap.status}, stdout ${snap.stdout === plain.stdout && plain.status === 0 ? "byte-identical to" : "DIFFERENT from"} the plain run's (${plain.stdout.length} chars)`,
        );
      }
      for (const [j, other] of NODES.entries()) {
        if (j === i) continue;
        const r = stdoutOf([other, "--snapshot-blob", b.warm, BIN, "--version"]);
        lines.push(`a blob of ${version} run by ${other}: exit ${r.status}, stderr ${JSON.stringify(r.stderr.trim())}`);
      }
      const cases: [string, string[]][] = [
        ["node -e 0 (baseline)", [node, "-e", "0"]],
        ["empty program's blob", [node, "--snapshot-blob", b.empty, BIN]],
        ["--version", [node, BIN, "--version"]],
        ["--version, warm blob", [node, "--snapshot-blob", b.warm, BIN, "--version"]],
        ["render", [node, BIN, "render", SMALL]],
        ["render, cold blob", [node, "--snapshot-blob", b.cold, BIN, "render", SMALL]],
        ["render, warm blob", [node, "--snapshot-blob", b.warm, BIN, "render", SMALL]],
        ["render, sh + warm blob", [launcher, "render", SMALL]],
      ];
      note(`${version}: ${RUNS} rounds of ${cases.length} cases`);
      for (const [, argv] of cases) runOnce(argv); // page cache; this node's code cache of render
      const runs = new Map<string, Run[]>(cases.map(([k]) => [k, []]));
      for (let r = 0; r < RUNS; r++)
        for (const [k, argv] of r % 2 ? [...cases].reverse() : cases) runs.get(k)!.push(runOnce(argv));
      const base = runs.get(cases[0]![0])!;
      const bw = median(base.map((r) => r.wallMs));
      const bc = mean(base.map((r) => r.cpuMs));
      const rows = [["command", "wall (median)", "x node -e 0", "CPU (mean)", "x node -e 0"]];
      for (const [k] of cases) {
        const rs = runs.get(k)!;
        const w = median(rs.map((r) => r.wallMs));
        const c = mean(rs.map((r) => r.cpuMs));
        rows.push([k, `${w.toFixed(1)} ms`, ratio(w, bw), `${c.toFixed(1)} ms`, ratio(c, bc)]);
      }
      lines.push(
        "",
        `${version}, ${RUNS} runs each, interleaved (CPU: GNU time's 10 ms steps, so the mean)`,
        table(rows),
        "",
      );
    }
    lines.push(NOISE_NOTE);
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
