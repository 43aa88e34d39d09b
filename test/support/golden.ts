// The golden cases: test/golden/<name>.policy.yaml -> <name>.nft (expected render), with an
// optional <name>.ctx.json (the compile context, e.g. the agent's API endpoint).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { Policy } from "../../src/engine/policy/index.ts";
import type { CompileContext } from "../../src/engine/compile/nft/index.ts";

export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "golden");

export interface GoldenCase {
  name: string;
  policy: Policy;
  ctx: CompileContext;
  expectedPath: string;
}

export function goldenCases(): GoldenCase[] {
  return readdirSync(GOLDEN_DIR)
    .filter((f) => f.endsWith(".policy.yaml"))
    .sort()
    .map((f) => {
      const name = f.slice(0, -".policy.yaml".length);
      const ctxPath = join(GOLDEN_DIR, `${name}.ctx.json`);
      return {
        name,
        policy: Policy.parse(parse(readFileSync(join(GOLDEN_DIR, f), "utf8"))),
        ctx: existsSync(ctxPath) ? (JSON.parse(readFileSync(ctxPath, "utf8")) as CompileContext) : {},
        expectedPath: join(GOLDEN_DIR, `${name}.nft`),
      };
    });
}
