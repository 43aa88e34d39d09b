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
//
// A cache file holds the exact text it was compiled from, then V8's data: V8 itself checks
// only the source's length, and a cache outlives the script it was made for (an upgrade by
// dpkg, `tar x` or `rsync -a` leaves unknown files in place and gives the new script an
// older time), so a cache is taken only when its text is the script's, byte for byte. The
// comparison costs less than loading node:crypto to hash (~0.4 ms against ~3 ms for 577 kB).
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { debuglog } from "node:util";
import { Script } from "node:vm";

const debug = debuglog("palisade");

/** The cache of `file` for this runtime. V8 refuses a cache from another V8 version or other flags. */
export function codeCachePath(file: string): string {
  return `${file}.${process.arch}-v8-${process.versions.v8}.cache`;
}

// The cache file: MAGIC, the source's length in bytes (u32 LE), flags (u32 LE), the source,
// V8's data.
const MAGIC = Buffer.from("PLSDCC01", "latin1");
const HEADER = MAGIC.length + 8;
/** Written by a run in place of a cache V8 refused: if V8 refuses this one too, it stays. */
const REPLACED = 1;

/**
 * The exports of the CommonJS bundle `file`, compiled with its code cache when there is a
 * usable one, from the source alone otherwise (same result, only slower).
 */
export function runCachedScript(file: string): unknown {
  const bytes = readFileSync(file);
  const cacheFile = codeCachePath(file);
  const cache = readCache(bytes, cacheFile);
  // Node's own CommonJS wrapper; strict because the bundle's sources are ES modules.
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {"use strict";${bytes.toString("utf8")}\n})`,
    { filename: file, cachedData: cache.cachedData },
  );
  const rejected = cache.cachedData !== undefined && script.cachedDataRejected === true;
  debug(
    "code cache %s: %s",
    cacheFile,
    cache.cachedData === undefined ? cache.state : rejected ? "rejected" : "accepted",
  );
  const module = { exports: {} as unknown };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  // The build always writes. A run writes where there was no cache for this text, and in
  // place of a cache V8 refused (made under other flags, e.g. --cpu-prof, or damaged) once:
  // a cache a run wrote that way and V8 refuses again stays, so that runs whose flags
  // differ do not rewrite it in turn forever (a new script, or the build, starts afresh).
  const mode = process.env.PALISADE_CODE_CACHE;
  let flags = -1;
  if (mode === "write") flags = 0;
  else if (mode !== "off") {
    if (cache.cachedData === undefined) flags = 0;
    else if (rejected && (cache.flags & REPLACED) === 0) flags = REPLACED;
  }
  // After the run, so the cache holds what the run compiled, not only the top level.
  if (flags >= 0) process.once("exit", () => writeCache(bytes, cacheFile, script, flags));
  return module.exports;
}

/**
 * Writes the cache, with the text it was compiled from, through a temporary file renamed
 * into place (a concurrent run reads the whole cache or none). Any failure (a read-only
 * install, another user's files) leaves things as they were: the verb has already answered.
 */
function writeCache(source: Buffer, cacheFile: string, script: Script, flags: number): void {
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  let fd: number | undefined;
  let opened = false;
  try {
    // Opened before the cache is serialised: where nothing can be written (a read-only
    // install), each run pays only this failed open.
    fd = openSync(tmp, "wx", 0o644);
    opened = true;
    const header = Buffer.alloc(HEADER);
    MAGIC.copy(header);
    header.writeUInt32LE(source.length, MAGIC.length);
    header.writeUInt32LE(flags, MAGIC.length + 4);
    for (const part of [header, source, script.createCachedData()])
      for (let at = 0; at < part.length; ) at += writeSync(fd, part, at);
    closeSync(fd);
    fd = undefined;
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
 * V8's data from the cache, if the cache was made from exactly `source`. "none": no cache
 * file; "stale": a cache of another text (or an older format); "unreadable": a cache that
 * cannot be read, which is no cache either.
 */
function readCache(source: Buffer, cacheFile: string): { cachedData?: Buffer; flags: number; state: string } {
  let data: Buffer;
  try {
    data = readFileSync(cacheFile);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { flags: 0, state: "none" };
    debug("code cache %s: unreadable: %s", cacheFile, e instanceof Error ? e.message : String(e));
    return { flags: 0, state: "unreadable" };
  }
  const end = HEADER + source.length;
  if (
    data.length <= end ||
    !data.subarray(0, MAGIC.length).equals(MAGIC) ||
    data.readUInt32LE(MAGIC.length) !== source.length ||
    !data.subarray(HEADER, end).equals(source)
  )
    return { flags: 0, state: "stale" };
  return { cachedData: data.subarray(end), flags: data.readUInt32LE(MAGIC.length + 4), state: "found" };
}
