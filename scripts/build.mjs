// `npm run build` (after `prisma generate`, see package.json): bundles the TypeScript
// with esbuild into dist/. Two outputs:
//
//   dist/cli/main.cjs + dist/cli/commands/<verb>.js   the `palisade` command (bin/palisade
//       requires it): main.cjs holds commander and the verb table (src/cli/program.ts), each
//       verb is its own bundle, imported only when that verb runs. main.cjs is CommonJS so
//       that a local verb never starts Node's ES module loader, and the local verbs of
//       SCRIPT_VERBS are classic scripts (commands/<verb>.cjs) that main.cjs runs with a V8
//       code cache made here by a warm-up run (src/cli/cached-script.ts): `palisade render`
//       spent most of its time compiling cold code. dist/cli/cpu-worker.js is the worker
//       thread of the server's CPU pool (src/api/cpu-pool.ts). Dependencies the server needs
//       at run time (Fastify, BullMQ, Prisma's runtime, pg, grpc-js, ...) stay in
//       node_modules, imported as packages; the small pure ones every verb uses (commander,
//       zod, yaml) are bundled, which is most of the start-up saving.
//   dist/agent/palisade-agent.cjs   the standalone agent (src/agent/bundle-main.ts): one
//       file with everything it runs (engine, grpc-js, the generated protocol and
//       @bufbuild/protobuf's wire codec, zod), and palisade-agent-render.cjs beside it, the
//       worker thread that validates and compiles policies (src/agent/policy-worker-main.ts),
//       nothing of the API, CLI or database; its esbuild metafile sits beside it
//       (palisade-agent.meta.json) so a test can check what went in, and its source map
//       (palisade-agent.cjs.map, not shipped: its identifiers are minified). `npm run pack:agent`
//       ships it (scripts/pack-agent.mjs).
//
// Files read at run time (package.json, proto/, prisma/migrations) are found next to the
// nearest package.json above the running module (src/runtime/install-root.ts), so the
// bundles need no copies of them. Bundled CommonJS (commander, grpc-js, protobufjs) calls
// require() for Node's built-in modules; the banner gives the ESM output a real one (the
// agent's two bundles are CommonJS and have it).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

/** Dependencies bundled into the CLI (pure JS, on the path of every verb); the rest stay packages. */
const CLI_BUNDLED = new Set(["commander", "yaml", "zod", "fastify-type-provider-zod"]);

const REQUIRE_BANNER =
  'import { createRequire as __palisadeCreateRequire } from "node:module";\nconst require = __palisadeCreateRequire(import.meta.url);';

/**
 * zod's `z.locales` namespace holds ~50 translations of its error messages (a third of
 * zod's size); Palisade reports its own English messages and never selects a locale, so
 * the bundles get a `locales` with English alone (the default zod installs itself).
 */
const zodEnglishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](?:classic|core|mini)[\\/]/.test(args.importer)
        ? { path: join(dirname(args.importer), "../locales/index.js"), namespace: "zod-locales" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "zod-locales" }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(join(dirname(args.path), "en.js"))};`,
      resolveDir: dirname(args.path),
      loader: "js",
    }));
  },
};

const common = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  logLevel: "warning",
  legalComments: "eof",
  // Readable stacks in logs: whitespace and syntax are minified, names are kept.
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [zodEnglishOnly],
};

/**
 * src/cli/program.ts loads each verb with `import("./commands/<verb>.ts")`; in the bundle
 * that becomes `import("./commands/<verb>.js")`, a separate bundle built below. (esbuild's
 * code splitting would share chunks, but it assigns whole files to chunks, so every verb
 * that goes through src/engine/index.ts would load the whole engine.) A verb of
 * SCRIPT_VERBS becomes a module of main.cjs that runs its script instead.
 */
const verbsExternal = {
  name: "verbs-external",
  setup(b) {
    b.onResolve({ filter: /^\.\/commands\/[a-z-]+\.ts$/ }, (args) => {
      if (!/[\\/]src[\\/]cli[\\/]program\.ts$/.test(args.importer)) return undefined;
      const verb = args.path.slice("./commands/".length, -".ts".length);
      return verb in SCRIPT_VERBS
        ? { path: verb, namespace: "verb-script" }
        : { path: args.path.replace(/\.ts$/, ".js"), external: true };
    });
    b.onLoad({ filter: /.*/, namespace: "verb-script" }, (args) => ({
      contents: [
        'import { join } from "node:path";',
        `import { runCachedScript } from ${JSON.stringify(join(ROOT, "src/cli/cached-script.ts"))};`,
        `export const { register } = runCachedScript(join(__dirname, "commands/${args.path}.cjs"));`,
      ].join("\n"),
      resolveDir: ROOT,
      loader: "js",
    }));
  },
};

/**
 * commander requires node:child_process at its top level, for the executable subcommands
 * Palisade never declares; loading it also loads node:net, node:dgram and the stream
 * modules (~5 ms of `palisade render`, bench/footprint.ts). main.cjs gets a stand-in that
 * loads the real module on commander's first `childProcess.spawn`.
 */
const commanderLazyChildProcess = {
  name: "commander-lazy-child-process",
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer)
        ? { path: "child_process", namespace: "lazy-child-process" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "lazy-child-process" }, () => ({
      contents: 'module.exports = { get spawn() { return require("node:child_process").spawn; } };',
      loader: "js",
    }));
  },
};

/**
 * Local verbs that main.cjs runs as classic scripts with a V8 code cache
 * (src/cli/cached-script.ts), each with the command line of the build's warm-up run that
 * makes the cache. A script may import Node's built-in modules only (it cannot import a
 * package's ES module), and nothing dynamically: a script compiled from a code cache loses
 * Node's import() callback.
 */
const WARM_UP_POLICY = "scripts/warm-up.policy.yaml";
const SCRIPT_VERBS = {
  render: ["render", WARM_UP_POLICY],
  validate: ["validate", WARM_UP_POLICY],
};
const BUILTIN = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/**
 * CommonJS output: what the sources read as import.meta.url is the file's own URL. "use
 * strict" comes first, before the banner's code (esbuild's own directive would follow it
 * and count for nothing): the sources are ES modules, written for strict mode.
 */
const commonJs = {
  format: "cjs",
  outExtension: { ".js": ".cjs" },
  define: { "import.meta.url": "__palisadeModuleUrl" },
  banner: { js: '"use strict";\nvar __palisadeModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
};

/**
 * Runs each script verb once so that its code cache holds what a real run compiles. With
 * the node running this build and no NODE_OPTIONS: V8 takes a cache only under the flags
 * it was made with, which are those of a plain `palisade` command.
 */
function warmUpScriptVerbs() {
  for (const argv of Object.values(SCRIPT_VERBS))
    execFileSync(process.execPath, [join(ROOT, "bin/palisade"), ...argv], {
      cwd: ROOT,
      env: { ...process.env, PALISADE_CODE_CACHE: "write", NODE_OPTIONS: "" },
      stdio: ["ignore", "ignore", "inherit"],
    });
}

export async function buildCli() {
  rmSync(join(ROOT, "dist/cli"), { recursive: true, force: true });
  // zod stays bundled together with fastify-type-provider-zod: the API's schemas and the
  // provider that turns them into JSON Schema must share one zod.
  const external = Object.keys(pkg.dependencies ?? {}).filter((d) => !CLI_BUNDLED.has(d));
  const verbs = readdirSync(join(ROOT, "src/cli/commands"))
    .filter((f) => /^[a-z-]+\.ts$/.test(f))
    .map((f) => f.replace(/\.ts$/, ""));
  // ES modules: the verbs that import packages (or may), and the CPU pool's worker thread.
  const modules = await build({
    ...common,
    entryPoints: {
      ...Object.fromEntries(
        verbs.filter((v) => !(v in SCRIPT_VERBS)).map((v) => [`commands/${v}`, `src/cli/commands/${v}.ts`]),
      ),
      // The server's CPU pool runs this in a worker thread (src/api/cpu-pool.ts finds it here).
      "cpu-worker": "src/api/cpu-worker.ts",
      // `palisade agent` renders policies in this worker thread (src/agent/policy-worker.ts).
      "agent-render": "src/agent/policy-worker-main.ts",
    },
    outdir: "dist/cli",
    external,
    banner: { js: REQUIRE_BANNER },
    // Where the agent verb (dist/cli/commands/agent.js) finds its render worker.
    define: { __AGENT_RENDER_WORKER__: JSON.stringify("../agent-render.js") },
    metafile: true,
  });
  // CommonJS: the entry (bin/palisade requires it: no ES module loader on the way to a
  // local verb) and the script verbs.
  const scripts = await build({
    ...common,
    ...commonJs,
    plugins: [...common.plugins, verbsExternal, commanderLazyChildProcess],
    entryPoints: {
      main: "src/cli/main.ts",
      ...Object.fromEntries(Object.keys(SCRIPT_VERBS).map((v) => [`commands/${v}`, `src/cli/commands/${v}.ts`])),
    },
    outdir: "dist/cli",
    external,
    metafile: true,
  });
  for (const v of Object.keys(SCRIPT_VERBS)) {
    const bad = scripts.metafile.outputs[`dist/cli/commands/${v}.cjs`].imports.filter(
      (i) => !BUILTIN.has(i.path) || i.kind === "dynamic-import",
    );
    if (bad.length > 0)
      throw new Error(
        `the ${v} verb is run as a script but imports ${bad.map((i) => `${i.path} (${i.kind})`).join(", ")}`,
      );
  }
  const metafile = {
    inputs: { ...modules.metafile.inputs, ...scripts.metafile.inputs },
    outputs: { ...modules.metafile.outputs, ...scripts.metafile.outputs },
  };
  writeFileSync(join(ROOT, "dist/cli/meta.json"), JSON.stringify(metafile));
  warmUpScriptVerbs();
  return { metafile };
}

/**
 * grpc-js requires @grpc/proto-loader (and with it protobufjs, long, lodash.camelcase) only
 * to serve the channelz and ORCA services, which the agent never does: in the agent bundle
 * it is a stub that throws, ~125 kB less source text in the resting agent's heap.
 */
const noProtoLoader = {
  name: "no-proto-loader",
  setup(b) {
    b.onResolve({ filter: /^@grpc\/proto-loader$/ }, () => ({ path: "proto-loader", namespace: "no-proto-loader" }));
    b.onLoad({ filter: /.*/, namespace: "no-proto-loader" }, () => ({
      contents: 'throw new Error("@grpc/proto-loader is not in the agent bundle");',
      loader: "js",
    }));
  },
};

/** Node flags the agent runs with: the shebang here and ExecStart= of deploy/palisade-agent.service (tests check they agree). */
export const AGENT_NODE_FLAGS = ["--max-semi-space-size=1", "--optimize-for-size", "--no-sparkplug"];

/** The agent's render worker, beside the bundle (the tarball ships both). */
export const AGENT_RENDER_WORKER = "palisade-agent-render";

export async function buildAgent() {
  rmSync(join(ROOT, "dist/agent"), { recursive: true, force: true });
  const result = await build({
    ...common,
    // The render worker is its own file: the resting agent never loads zod's policy schema
    // or the compiler (src/agent/policy-worker.ts). No code splitting: the two share
    // nothing at run time (separate isolates), so each is one self-contained file.
    entryPoints: {
      "palisade-agent": "src/agent/bundle-main.ts",
      [AGENT_RENDER_WORKER]: "src/agent/policy-worker-main.ts",
    },
    outdir: "dist/agent",
    plugins: [...common.plugins, noProtoLoader],
    // CommonJS, not an ES module: Node then never starts its ES module loader in the agent
    // (or in the render worker), ~1 MB less resting RSS (bench/README.md, footprint.ts).
    format: "cjs",
    outExtension: { ".js": ".cjs" },
    define: {
      __AGENT_RENDER_WORKER__: JSON.stringify(`./${AGENT_RENDER_WORKER}.cjs`),
      "import.meta.url": "__palisadeModuleUrl",
    },
    // import.meta.resolve is only reached from the TypeScript sources (src/runtime/worker-script.ts).
    logOverride: { "empty-import-meta": "silent" },
    banner: {
      js: `#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(" ")}\n${commonJs.banner.js}`,
    },
    // Short local names too: the bundle's source stays in V8's heap for the agent's whole
    // life (bench/footprint.ts: 1.5 -> 1.1 MB of text, ~1.5-2 MB less resting RSS). Error
    // classes name themselves (`name = "NftError"`), so codes and messages are unchanged;
    // the external source map beside the bundle maps a stack back to the sources.
    minifyIdentifiers: true,
    sourcemap: "external",
    sourcesContent: false,
    metafile: true,
  });
  writeFileSync(join(ROOT, "dist/agent/palisade-agent.meta.json"), JSON.stringify(result.metafile));
  chmodSync(join(ROOT, "dist/agent/palisade-agent.cjs"), 0o755);
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const only = process.argv[2];
  if (only !== undefined && only !== "cli" && only !== "agent") {
    console.error("usage: node scripts/build.mjs [cli|agent]");
    process.exit(2);
  }
  const t0 = Date.now();
  if (only !== "agent") await buildCli();
  if (only !== "cli") await buildAgent();
  console.error(`built dist/ in ${Date.now() - t0} ms`);
}
