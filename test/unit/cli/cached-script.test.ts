// runCachedScript (src/cli/cached-script.ts), how `palisade render` and `validate` run: a
// script answers the same with or without its V8 code cache; a run that found no cache
// writes one (unless PALISADE_CODE_CACHE=off), as does every run with
// PALISADE_CODE_CACHE=write (the build), and the next process takes it; a cache made from
// other text (whatever the files' times), or one V8 refuses, is never run, and a run replaces
// it (a refused one once). Each run is its own process (a
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

test("an upgrade that leaves the cache and gives the new script the same length and an older time runs the new code", async () => {
  // dpkg, `tar x` and `rsync -a` keep files they do not know and give the script the archive's time.
  writeFileSync(script, source(3));
  const january = new Date("2026-01-15T00:00:00Z");
  utimesSync(script, january, january);
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "stale" });
  // That run replaced the cache with one for the new text, which the next process takes.
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "accepted" });
});

test("an upgrade to a script of another length: the old cache is not tried, and is replaced", async () => {
  writeFileSync(script, `${source(5)}exports.longer = true;\n`);
  const january = new Date("2026-01-16T00:00:00Z");
  utimesSync(script, january, january);
  assert.deepEqual(await run(), { out: "5,10,15 verb.cjs", cache: "stale" });
  assert.deepEqual(await run(), { out: "5,10,15 verb.cjs", cache: "accepted" });
  writeFileSync(script, source(3));
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "stale" });
});

test("a cache that cannot be read, and a cache write that fails, fall back to the source", async () => {
  const unreadable = `${codeCachePath(script)}`;
  // A directory where the cache file should be: reading it fails (EISDIR), as writing it does.
  rmSync(unreadable, { force: true });
  mkdirSync(unreadable);
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "unreadable" });
  assert.deepEqual(await run({ PALISADE_CODE_CACHE: "write" }), { out: "3,6,9 verb.cjs", cache: "unreadable" });
  rmSync(unreadable, { recursive: true, force: true });
});

/** The cache file with V8's part replaced by bytes V8 refuses; what comes before (the text it was made from) kept. */
function spoil(): Buffer {
  const cache = readFileSync(codeCachePath(script));
  const text = Buffer.from(source(3));
  const end = cache.indexOf(text) + text.length;
  assert.ok(end > text.length, "the cache does not hold its script's text");
  const spoilt = Buffer.concat([cache.subarray(0, end), Buffer.alloc(4096, 7)]);
  writeFileSync(codeCachePath(script), spoilt);
  return spoilt;
}

test("a cache V8 refuses is not used and is replaced once; one V8 refuses again stays (no rewrite on every run)", async () => {
  await run({ PALISADE_CODE_CACHE: "write" });
  spoil();
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "rejected" });
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "accepted" });
  // The cache that run wrote, refused in turn (as under other flags): left as it is.
  const spoilt = spoil();
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "rejected" });
  assert.deepEqual(readFileSync(codeCachePath(script)), spoilt);
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "rejected" });
  assert.deepEqual(readFileSync(codeCachePath(script)), spoilt);
  // The build's write replaces it.
  assert.deepEqual(await run({ PALISADE_CODE_CACHE: "write" }), { out: "3,6,9 verb.cjs", cache: "rejected" });
  assert.deepEqual(await run(), { out: "3,6,9 verb.cjs", cache: "accepted" });
});
