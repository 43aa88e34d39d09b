// Running a verb bundle built as a classic script (scripts/build.mjs: dist/cli/commands/
// <verb>.cjs) with V8's code cache. A one-shot verb like `render` spends most of its time
// compiling and first running cold code (zod, yaml, the compiler); a cache made after a
// run holds the bytecode of every function that run compiled, so the next process skips
// that work. ES modules cannot take a cache on Node 20, classic scripts can (node:vm). The
// build makes the cache for the Node that builds (PALISADE_CODE_CACHE=write). A cache
// belongs to one V8 version, so a `dist/` run by another Node has none for it: the first
// run of that Node then writes its own beside the script, if it can (like Python's
// __pycache__; a read-only install just runs without one). PALISADE_CODE_CACHE=off: never
// write.
import { closeSync, openSync, readFileSync, renameSync, rmSync, type Stats, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { debuglog } from "node:util";
import { Script } from "node:vm";

const debug = debuglog("palisade");

/** The cache of `file` for this runtime. V8 refuses a cache from another V8 version or other flags. */
export function codeCachePath(file: string): string {
  return `${file}.${process.arch}-v8-${process.versions.v8}.cache`;
}

/**
 * The exports of the CommonJS bundle `file`, compiled with its code cache when there is a
 * usable one, from the source alone otherwise (same result, only slower).
 */
export function runCachedScript(file: string): unknown {
  const source = readFileSync(file, "utf8");
  const cacheFile = codeCachePath(file);
  const { cachedData, script: scriptStat } = readCache(file, cacheFile);
  // Node's own CommonJS wrapper; strict because the bundle's sources are ES modules.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {"use strict";${source}\n})`, {
    filename: file,
    cachedData,
  });
  debug(
    "code cache %s: %s",
    cacheFile,
    cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "accepted",
  );
  const module = { exports: {} as unknown };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  // The build always writes; a run writes only where there was no usable cache at all (a
  // cache V8 refused was made under other flags, e.g. --cpu-prof, and stays for the runs
  // that match it).
  const mode = process.env.PALISADE_CODE_CACHE;
  if (mode === "write" || (mode !== "off" && cachedData === undefined && scriptStat !== undefined))
    // After the run, so the cache holds what the run compiled, not only the top level.
    process.once("exit", () => writeCache(file, cacheFile, script, scriptStat));
  return module.exports;
}

/**
 * Writes the cache through a temporary file renamed into place (a concurrent run reads the
 * whole cache or none), and only if the script is still the one this process compiled: a
 * rebuild meanwhile must not get the old script's bytecode. Any failure (a read-only
 * install, another user's files) leaves things as they were: the verb has already answered.
 */
function writeCache(file: string, cacheFile: string, script: Script, compiled: Stats | undefined): void {
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  let fd: number | undefined;
  let opened = false;
  try {
    // Opened before the cache is serialised: where nothing can be written (a read-only
    // install), each run pays only this failed open.
    fd = openSync(tmp, "wx", 0o644);
    opened = true;
    writeFileSync(fd, script.createCachedData());
    closeSync(fd);
    fd = undefined;
    const now = statSync(file);
    if (
      compiled !== undefined &&
      (now.mtimeMs !== compiled.mtimeMs || now.size !== compiled.size || now.ino !== compiled.ino)
    )
      throw new Error(`${file} changed during the run`);
    renameSync(tmp, cacheFile);
    debug("code cache %s: written", cacheFile);
  } catch (e) {
    try {
      if (fd !== undefined) closeSync(fd);
      // Only a temporary file this process made.
      if (opened) rmSync(tmp, { force: true });
    } catch {
      // Nothing more to undo.
    }
    debug("code cache %s: not written: %s", cacheFile, e instanceof Error ? e.message : String(e));
  }
}

/**
 * The cache, unless the script may have changed after it was made: V8 compares the source's
 * length, not its text, and a cache for other text would run the wrong code. The build
 * writes the cache well after the script, so only a cache strictly newer is taken: an equal
 * time (an archive or copy that normalised them) or an older one is not. A cache that
 * cannot be read is no cache.
 */
function readCache(file: string, cacheFile: string): { cachedData?: Buffer; script?: Stats } {
  let script: Stats | undefined;
  try {
    script = statSync(file);
    const made = statSync(cacheFile, { throwIfNoEntry: false });
    if (made === undefined || made.mtimeMs <= script.mtimeMs) return { script };
    return { cachedData: readFileSync(cacheFile), script };
  } catch (e) {
    debug("code cache %s: unreadable: %s", cacheFile, e instanceof Error ? e.message : String(e));
    return { script };
  }
}
