// The `palisade` command's entry (run.ts does the work). No top-level await: the build
// makes this a CommonJS bundle (scripts/build.mjs).
import { runCli } from "./run.ts";

void runCli(process.argv.slice(2));
