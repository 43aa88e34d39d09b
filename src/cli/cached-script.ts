// Running a verb bundle built as a classic script (scripts/build.mjs: dist/cli/commands/
// <verb>.cjs) with V8's code cache. A one-shot verb like `render` spends most of its time
// compiling and first running cold code (zod, yaml, the compiler); a cache made after a
// warm-up run at build time holds the bytecode of every function that run compiled, so
// the next process skips that work. ES modules cannot take a cache on Node 20, classic
// scripts can (node:vm). The cache is only read here: the build writes it
// (PALISADE_CODE_CACHE=write), nothing writes into the install at run time.
import { readFileSync, statSync, writeFileSync } from "node:fs";
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
  const cachedData = readCache(file, cacheFile);
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
  // After the run, so the cache holds what the run compiled, not only the top level.
  if (process.env.PALISADE_CODE_CACHE === "write")
    process.once("exit", () => {
      // Only the build asks for this; set by hand on a read-only install it must not fail the verb.
      try {
        writeFileSync(cacheFile, script.createCachedData());
      } catch (e) {
        debug("code cache %s: not written: %s", cacheFile, e instanceof Error ? e.message : String(e));
      }
    });
  return module.exports;
}

/**
 * The cache, unless the script may have changed after it was made: V8 compares the source's
 * length, not its text, and a cache for other text would run the wrong code. The build
 * writes the cache well after the script, so only a cache strictly newer is taken: an equal
 * time (an archive or copy that normalised them) or an older one is not. A cache that
 * cannot be read is no cache.
 */
function readCache(file: string, cacheFile: string): Buffer | undefined {
  try {
    const made = statSync(cacheFile, { throwIfNoEntry: false });
    if (made === undefined || made.mtimeMs <= statSync(file).mtimeMs) return undefined;
    return readFileSync(cacheFile);
  } catch (e) {
    debug("code cache %s: unreadable: %s", cacheFile, e instanceof Error ? e.message : String(e));
    return undefined;
  }
}
