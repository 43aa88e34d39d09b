// Where the files that ship beside the code (package.json, proto/, prisma/migrations) are:
// the nearest directory above a module that holds a package.json. The same module runs
// from src/<part>/x.ts (tsx, tests), from a bundle chunk in dist/<entry>/ (`npm run
// build`) and from the agent tarball's top directory, so a fixed "../.." cannot serve
// all three; the walk is a handful of stat calls once per process.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MAX_LEVELS = 8;

/** The directory holding the package.json nearest above `moduleUrl` (an import.meta.url). */
export function installRoot(moduleUrl: string): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (let i = 0; i < MAX_LEVELS; i++) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`no package.json above ${fileURLToPath(moduleUrl)}: the install is incomplete`);
}

/** The `version` of that package.json ("0.0.0" when it has none or cannot be read). */
export function packageVersion(moduleUrl: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(installRoot(moduleUrl), "package.json"), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "0.0.0";
  } catch {
    return "0.0.0";
  }
}
