// The standalone agent bundle (dist/agent/palisade-agent.cjs, `npm run build`) holds what
// the agent runs and nothing of the API, the CLI or the database: read from esbuild's own
// record of its inputs (palisade-agent.meta.json). And it needs no node_modules: the only
// imports left in it are Node's built-in modules.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { unitNodeFlags } from "../../support/unit-privileges.ts";

const ROOT = join(import.meta.dirname, "../../..");
const META = join(ROOT, "dist/agent/palisade-agent.meta.json");

interface Metafile {
  inputs: Record<string, unknown>;
  outputs: Record<
    string,
    {
      bytes: number;
      imports: { path: string; external?: boolean }[];
      inputs: Record<string, { bytesInOutput: number }>;
    }
  >;
}

function meta(): Metafile {
  assert.ok(existsSync(META), `${META} missing: run \`npm run build\``);
  return JSON.parse(readFileSync(META, "utf8")) as Metafile;
}

/** Packages (node_modules/<name>) and src/ parts whose code ended up in the output of `entry`. */
function contents(
  m: Metafile,
  entry = "src/agent/bundle-main.ts",
): { packages: Set<string>; src: Set<string>; files: Set<string> } {
  const out = Object.values(m.outputs).find((o) => Object.keys(o.inputs).some((i) => i.endsWith(entry)));
  assert.ok(out, `no output holds ${entry}`);
  const packages = new Set<string>();
  const src = new Set<string>();
  const files = new Set<string>();
  for (const [input, v] of Object.entries(out.inputs)) {
    if (v.bytesInOutput === 0) continue;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (pkg) packages.add(pkg[1]!);
    else if (input.startsWith("src/")) {
      src.add(input.split("/").slice(0, 2).join("/"));
      files.add(input);
    }
  }
  return { packages, src, files };
}

test("the agent bundle holds grpc-js, the generated protocol with its wire codec and the agent, and no Fastify, BullMQ, Prisma, Redis, pg, commander, tsx, X.509 library or proto-loader/protobufjs (grpc-js needs them only to serve channelz)", () => {
  const { packages, src } = contents(meta());
  for (const p of ["@grpc/grpc-js", "@bufbuild/protobuf", "zod"])
    assert.ok(packages.has(p), `${p} missing; has ${[...packages].join(", ")}`);
  for (const s of ["src/agent", "src/engine", "src/protocol"]) assert.ok(src.has(s), `${s} missing`);
  const banned =
    /^(fastify|@fastify\/.*|fastify-.*|bullmq|ioredis|pg|pg-.*|@prisma\/.*|prisma|prom-client|commander|tsx|esbuild|yaml|@peculiar\/.*|asn1js|tsyringe|reflect-metadata|@grpc\/proto-loader|protobufjs|long)$/;
  assert.deepEqual(
    [...packages].filter((p) => banned.test(p)),
    [],
  );
  assert.deepEqual(
    [...src].filter((s) => s === "src/api" || s === "src/cli" || s === "src/generated"),
    [],
  );
});

test("the agent bundle imports only Node's built-in modules", () => {
  const builtins = new Set(builtinModules.flatMap((b) => [b, `node:${b}`]));
  const imports = Object.values(meta().outputs).flatMap((o) => o.imports.map((i) => i.path));
  assert.deepEqual(
    imports.filter((p) => !builtins.has(p)),
    [],
  );
});

test("the bundle's shebang runs node with the same flags as the systemd unit's ExecStart=", () => {
  const shebang = readFileSync(join(ROOT, "dist/agent/palisade-agent.cjs"), "utf8").split("\n", 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node((?: --[\w-]+(?:=\S+)?)*)$/.exec(shebang);
  assert.ok(m, shebang);
  const unit = readFileSync(join(ROOT, "deploy/palisade-agent.service"), "utf8");
  assert.deepEqual(m[1]!.trim().split(/\s+/).filter(Boolean), unitNodeFlags(unit));
});

test("the policy validator and the nft compiler are only in the render worker, never in the resting agent", () => {
  const m = meta();
  // The agent keeps the compiler's naming helpers (quota and accounting object names) and nothing else of it.
  const heavy = (f: string) =>
    /^src\/engine\/(validate|policy)\//.test(f) ||
    (f.startsWith("src/engine/compile/") && !/^src\/engine\/compile\/nft\/(index|quota|accounting)\.ts$/.test(f));
  const agent = [...contents(m).files].filter(heavy);
  assert.deepEqual(agent, [], "the agent bundle would load them at start and keep them for its life");
  const worker = contents(m, "src/agent/policy-worker-main.ts").files;
  for (const f of ["src/engine/validate/index.ts", "src/engine/compile/nft/index.ts", "src/agent/render.ts"])
    assert.ok(worker.has(f), `${f} missing from the render worker`);
});
