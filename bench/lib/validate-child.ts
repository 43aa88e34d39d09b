// Runs the full public validatePolicy() on one bench case in its own process, so the
// parent can bound it with a timeout and kill it by pid. Prints {"ms": N, "ok": bool}.
import { validatePolicy } from "../../src/engine/index.ts";
import { CASES } from "./policies.ts";

const key = process.argv[2] as keyof typeof CASES;
const c = CASES[key];
if (!c) {
  process.stderr.write(`unknown case ${String(key)}\n`);
  process.exit(2);
}
const doc = c.doc();
const t0 = performance.now();
const v = validatePolicy(doc, { target: "nftables" });
process.stdout.write(JSON.stringify({ ms: performance.now() - t0, ok: v.ok, warnings: v.warnings.length, errors: v.errors.length }) + "\n");
