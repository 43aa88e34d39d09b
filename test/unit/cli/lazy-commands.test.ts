// The CLI loads only the verb it runs (src/cli/program.ts): the verb table agrees with
// src/cli/commands/, and the built `palisade` (bin/palisade -> dist/cli) answers
// --version, --help, `agent --help` and `render` without loading the server's packages.
// What a process loads is read from Node's own module debug log (NODE_DEBUG=module names
// every CommonJS package it loads; Fastify, BullMQ, ioredis, pg, Prisma's runtime and
// grpc-js are CommonJS). `palisade server` is the control: there they do show up.
// render and validate run as scripts with a code cache (src/cli/cached-script.ts), whose
// own debug log (NODE_DEBUG=palisade) says whether the cache was taken.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command, Help } from "commander";
import { codeCachePath } from "../../../src/cli/cached-script.ts";
import { COMMANDS, selectedVerb } from "../../../src/cli/program.ts";

const ROOT = join(import.meta.dirname, "../../..");
const BIN = join(ROOT, "bin/palisade");
const SERVER_PACKAGES = /node_modules\/(fastify|@fastify|bullmq|ioredis|pg|@prisma|@grpc|prom-client)\//;
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { timeout: 60_000, env: { ...process.env, NODE_DEBUG: "module", ...env }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}
const loadedServerPackages = (debugLog: string) =>
  [...new Set(debugLog.split("\n").flatMap((l) => SERVER_PACKAGES.exec(l)?.[1] ?? []))].sort();

test("the verb table names every module in src/cli/commands, and each registers its verb with the table's summary", async () => {
  const files = readdirSync(join(ROOT, "src/cli/commands"))
    .filter((f) => /^[a-z-]+\.ts$/.test(f))
    .map((f) => f.slice(0, -3))
    .sort();
  assert.deepEqual(
    Object.keys(COMMANDS).sort(),
    files,
    "every src/cli/commands/<verb>.ts needs its line in COMMANDS (src/cli/program.ts), and only those",
  );
  for (const [name, entry] of Object.entries(COMMANDS)) {
    const program = new Command();
    (await entry.load()).register(program);
    const cmd = program.commands.find((c) => c.name() === name);
    assert.ok(cmd, `src/cli/commands/${name}.ts registers no "${name}" command`);
    assert.equal(
      cmd.description(),
      entry.summary,
      `summary of ${name} in src/cli/program.ts differs from its module's description`,
    );
    assert.equal(
      [name, entry.args].filter(Boolean).join(" "),
      new Help().subcommandTerm(cmd),
      `args of ${name} in src/cli/program.ts differ from its module's`,
    );
  }
});

test("selectedVerb: the first word, or the one after help", () => {
  assert.equal(selectedVerb(["render", "x.yaml"]), "render");
  assert.equal(selectedVerb(["--version"]), undefined);
  assert.equal(selectedVerb(["help", "deploy"]), "deploy");
  assert.equal(selectedVerb(["agent", "--help"]), "agent");
});

test("bin/palisade runs the build (dist/cli), which `npm test` makes first", () => {
  assert.ok(existsSync(join(ROOT, "dist/cli/main.cjs")), "dist/cli/main.cjs missing: run `npm run build`");
});

test("--version and --help load none of the server's packages", async () => {
  const v = await run(["--version"]);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stdout.trim(), VERSION);
  assert.deepEqual(loadedServerPackages(v.stderr), []);
  const h = await run(["--help"]);
  assert.equal(h.code, 0, h.stderr);
  for (const verb of Object.keys(COMMANDS))
    assert.match(h.stdout, new RegExp(`^  ${verb} `, "m"), `--help lists ${verb}`);
  assert.deepEqual(loadedServerPackages(h.stderr), []);
});

test("render of a YAML policy loads none of the server's packages", async () => {
  const r = await run(["render", join(ROOT, "bench/fixtures/small.yaml")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^add table inet palisade/m);
  assert.deepEqual(loadedServerPackages(r.stderr), []);
});

for (const stdout of ["file", "pipe"] as const)
  test(`render loads neither node:child_process, node:net nor the stream modules (stdout a ${stdout}: commander's spawn, the address checks and the output load nothing)`, () => {
    // Node's built-in modules are not in the module debug log: the process lists what it
    // loaded, on fd 2 directly (process.stderr would load the stream modules itself). Its
    // stdout is a file, as in bench/footprint.ts, or a pipe, as in `palisade render | nft -f -`
    // (process.stdout would be a net.Socket there: src/cli/stdout.ts).
    const probe = `process.on("exit", () => require("node:fs").writeSync(2, "LOADED " + process.moduleLoadList.join(",")));
process.argv.splice(1, 0, ${JSON.stringify(BIN)});
require(${JSON.stringify(BIN)});`;
    const dir = mkdtempSync(join(tmpdir(), "palisade-render-modules-"));
    try {
      const out = stdout === "file" ? openSync(join(dir, "out"), "w") : "pipe";
      const r = spawnSync(process.execPath, ["-e", probe, "render", join(ROOT, "bench/fixtures/small.yaml")], {
        stdio: ["ignore", out, "pipe"],
        encoding: "utf8",
        timeout: 60_000,
        env: { ...process.env, NODE_OPTIONS: "" },
      });
      if (typeof out === "number") closeSync(out);
      assert.equal(r.status, 0, r.stderr);
      assert.match(
        typeof out === "number" ? readFileSync(join(dir, "out"), "utf8") : r.stdout,
        /^add table inet palisade/m,
      );
      const loaded = /LOADED (.*)$/m.exec(r.stderr)?.[1]?.split(",") ?? [];
      assert.ok(loaded.includes("NativeModule vm"), `no module list in: ${r.stderr}`);
      for (const m of ["child_process", "net", "dgram", "stream", "tty"])
        assert.ok(!loaded.includes(`NativeModule ${m}`), `render loaded node:${m}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

test("render and validate run from the code cache the build made (under another Node, from the one their first run wrote)", async () => {
  const caches = readdirSync(join(ROOT, "dist/cli/commands")).filter((f) => f.endsWith(".cache"));
  for (const verb of ["render", "validate"]) {
    const script = join(ROOT, `dist/cli/commands/${verb}.cjs`);
    assert.ok(
      caches.some((f) => f.startsWith(`${verb}.cjs.`)),
      `the build wrote no code cache for ${verb}: ${caches.join(", ")}`,
    );
    // Under another Node than the build's, the first run finds none and writes one.
    const mine = existsSync(codeCachePath(script));
    const r = await run([verb, join(ROOT, "bench/fixtures/small.yaml")], { NODE_DEBUG: "palisade" });
    assert.equal(r.code, 0, r.stderr);
    const said = `code cache ${codeCachePath(script)}: ${mine ? "accepted" : "none"}\n`;
    assert.ok(r.stderr.includes(said), `expected "${said.trim()}" in:\n${r.stderr}`);
  }
});

test("agent --help prints the agent's flags and exits 0 without starting it", async () => {
  const r = await run(["agent", "--help"], { NODE_DEBUG: "" });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Usage: palisade agent \[flags\]/);
  for (const flag of ["--server", "--state-dir", "--enroll-token", "--netns"])
    assert.match(r.stdout, new RegExp(`^  ${flag}\\b`, "m"));
  assert.match(r.stdout, /PALISADE_SERVER/);
});

test("control: `palisade server` does load them (the debug log sees what it is meant to)", async () => {
  // A bad PORT stops the server at its config check, after its bundle (and packages) loaded.
  const r = await run(["server"], { PORT: "not-a-port" });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /PORT/);
  const loaded = loadedServerPackages(r.stderr);
  for (const p of ["fastify", "bullmq", "@prisma"])
    assert.ok(loaded.includes(p), `${p} not seen in: ${loaded.join(", ")}`);
});
