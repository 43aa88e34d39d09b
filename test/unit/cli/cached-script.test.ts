// runCachedScript (src/cli/cached-script.ts), how `palisade render` and `validate` run: a
// script answers the same with or without its V8 code cache; a run that found no cache
// writes one (unless PALISADE_CODE_CACHE=off), as does every run with
// PALISADE_CODE_CACHE=write (the build), and the next process takes it; a cache older than
// its script, or one V8 refuses, is never run (and a refused one is not overwritten). Each run is its own process (a
// cache belongs to a process's V8 and flags); what happened to the cache is read from the
// loader's debug log (NODE_DEBUG=palisade).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";
import { codeCachePath } from "../../../src/cli/cached-script.ts";

const LOADER = pathToFileURL(join(import.meta.dirname, "../../../src/cli/cached-script.ts")).href;
const RUN = `import { runCachedScript } from ${JSON.stringify(LOADER)};
const m = runCachedScript(process.argv[1]);
process.stdout.write(m.answer() + " " + m.self);`;
let dir = "";
let script = "";

function run(env: Record<string, string> = {}): Promise<{ out: string; cache: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", RUN, script],
      { timeout: 60_000, env: { ...process.env, NODE_DEBUG: "palisade", NODE_OPTIONS: "", ...env } },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${err.message}\n${stderr}`));
        resolve({ out: stdout, cache: /code cache .*: (\w+)$/m.exec(stderr)?.[1] ?? `no debug line in: ${stderr}` });
      },
    );
  });
}

/** The script's text with `n` in its function; same length for every one-digit n. */
const source = (n: number) =>
  `exports.answer = () => [1, 2, 3].map((x) => x * ${n}).join(","); exports.self = require("node:path").basename(__filename);\n`;

const later = (ms: number) => new Date(Date.now() + ms);

before(() => {
  dir = mkdtempSync(join(tmpdir(), "palisade-cached-script-"));
  script = join(dir, "verb.cjs");
  writeFileSync(script, source(2));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("without a cache the script runs from its source; PALISADE_CODE_CACHE=off leaves none, a plain run leaves one", async () => {
  assert.deepEqual(await run({ PALISADE_CODE_CACHE: "off" }), { out: "2,4,6 verb.cjs", cache: "none" });
  assert.ok(!existsSync(codeCachePath(script)));
  assert.deepEqual(await run(), { out: "2,4,6 verb.cjs", cache: "none" });
  assert.ok(existsSync(codeCachePath(script)), "no cache written");
  assert.deepEqual(
    readdirSync(dir).sort(),
    [basename(codeCachePath(script)), "verb.cjs"].sort(),
    "a temporary file left",
  );
});

test("the next process takes the cache and answers the same", async () => {
  assert.deepEqual(await run(), { out: "2,4,6 verb.cjs", cache: "accepted" });
});

test("a script changed after its cache (same length: V8 alone would take the cache) runs from its new source", async () => {
  writeFileSync(script, source(3));
  const later = new Date(Date.now() + 10_000);
  utimesSync(script, later, later);
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "none" });
});

test("a cache exactly as old as its script (an archive that normalised both times) is not taken", async () => {
  // Same length, other text, and one timestamp for both: only the strict age test stands between them.
  await run({ PALISADE_CODE_CACHE: "write" });
  writeFileSync(script, source(4));
  const same = new Date(Date.now() + 15_000);
  utimesSync(script, same, same);
  utimesSync(codeCachePath(script), same, same);
  assert.deepEqual(await run(), { out: "4,8,12 verb.cjs", cache: "none" });
  writeFileSync(script, source(3));
  utimesSync(script, later(16_000), later(16_000));
});

test("a cache that cannot be read, and a cache write that fails, fall back to the source", async () => {
  const unreadable = `${codeCachePath(script)}`;
  // A directory where the cache file should be: stat finds it, reading it fails (EISDIR), as
  // writing it does.
  rmSync(unreadable, { force: true });
  mkdirSync(unreadable);
  utimesSync(unreadable, later(17_000), later(17_000));
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "none" });
  assert.deepEqual(await run({ PALISADE_CODE_CACHE: "write" }), { out: "3,6,9 verb.cjs", cache: "none" });
  rmSync(unreadable, { recursive: true, force: true });
});

test("a cache V8 refuses is not used, nor overwritten, and the script still runs", async () => {
  writeFileSync(codeCachePath(script), Buffer.alloc(4096, 7));
  const later = new Date(Date.now() + 20_000);
  utimesSync(codeCachePath(script), later, later);
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "rejected" });
  assert.deepEqual(readFileSync(codeCachePath(script)), Buffer.alloc(4096, 7));
  // The build's write replaces it (the script back in the past, so that a cache made now is newer).
  const past = new Date(Date.now() - 60_000);
  utimesSync(script, past, past);
  assert.deepEqual(await run({ PALISADE_CODE_CACHE: "write" }), { out: "3,6,9 verb.cjs", cache: "rejected" });
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "accepted" });
});
