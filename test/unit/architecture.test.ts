// The layering the README promises, checked on the source: the engine has no HTTP, DB or
// gRPC in it and only its driver runs programs; api and agent depend on the engine,
// never on each other; nothing below the CLI imports it; and no module imports itself
// back through a cycle.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
const SRC = join(ROOT, "src");

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === "generated" ? [] : files(p);
    return e.name.endsWith(".ts") ? [p] : [];
  });
}

// Built-in modules loaded on first use (process.getBuiltinModule) count as imports too.
const IMPORT_RE =
  /^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)|getBuiltinModule\(\s*"([^"]+)"\s*\)/gm;
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(IMPORT_RE)].map((m) => (m[1] ?? m[2] ?? m[3] ?? m[4])!);
}

const all = files(SRC);
const layer = (f: string) => relative(SRC, f).split("/")[0]!;
const resolveLocal = (from: string, spec: string) => resolve(dirname(from), spec);

test("the engine imports no HTTP, database, queue or gRPC library, and nothing outside src/engine", () => {
  const banned = /^(fastify|@fastify\/|@grpc\/|@prisma\/|prisma|pg$|ioredis|bullmq|commander)/;
  for (const f of all.filter((f) => layer(f) === "engine")) {
    for (const spec of imports(f)) {
      assert.ok(!banned.test(spec), `${relative(ROOT, f)} imports ${spec}`);
      if (spec.startsWith("."))
        assert.equal(
          layer(resolveLocal(f, spec)),
          "engine",
          `${relative(ROOT, f)} reaches outside the engine: ${spec}`,
        );
    }
  }
});

test("only the engine's driver runs programs", () => {
  for (const f of all.filter((f) => layer(f) === "engine" && !relative(SRC, f).startsWith("engine/driver/"))) {
    assert.ok(!imports(f).some((s) => s === "node:child_process"), `${relative(ROOT, f)} imports node:child_process`);
  }
});

test("api and agent depend on the engine, never on each other; only the CLI imports the CLI", () => {
  for (const f of all) {
    const from = layer(f);
    for (const spec of imports(f).filter((s) => s.startsWith("."))) {
      const to = layer(resolveLocal(f, spec));
      if (from === "api") assert.notEqual(to, "agent", `${relative(ROOT, f)} imports the agent: ${spec}`);
      if (from === "agent") assert.notEqual(to, "api", `${relative(ROOT, f)} imports the api: ${spec}`);
      if (from !== "cli") assert.notEqual(to, "cli", `${relative(ROOT, f)} imports the CLI: ${spec}`);
    }
  }
});

test("outside src/engine, the engine is imported only through src/engine/index.ts", () => {
  // The index is the engine's public surface (docs/architecture.md): the agent, the API and
  // the CLI never reach into its modules, so the engine can move its insides freely.
  const index = join(SRC, "engine", "index.ts");
  for (const f of all.filter((f) => layer(f) !== "engine")) {
    for (const spec of imports(f).filter((s) => s.startsWith("."))) {
      const to = resolveLocal(f, spec);
      if (layer(to) === "engine") assert.equal(to, index, `${relative(ROOT, f)} reaches into the engine: ${spec}`);
    }
  }
});

test("the API's domain (deploy, telemetry) never imports its transport (grpc, routes)", () => {
  // The transport maps the domain's own types to messages and responses; shared pieces
  // (the logger type, the per-host Redis bus, the protocol) live in neutral modules.
  const area = (f: string) => relative(join(SRC, "api"), f).split("/")[0]!;
  const domain = new Set(["deploy", "telemetry"]);
  const transport = new Set(["grpc", "routes"]);
  for (const f of all.filter((f) => layer(f) === "api" && domain.has(area(f)))) {
    for (const spec of imports(f).filter((s) => s.startsWith("."))) {
      const to = resolveLocal(f, spec);
      if (layer(to) === "api")
        assert.ok(!transport.has(area(to)), `${relative(ROOT, f)} imports the transport: ${spec}`);
    }
  }
});

test("no import cycles in src (type-only imports included)", () => {
  const graph = new Map<string, string[]>();
  for (const f of all) {
    graph.set(
      f,
      imports(f)
        .filter((s) => s.startsWith(".") && s.endsWith(".ts"))
        .map((s) => resolveLocal(f, s))
        .filter((t) => !t.includes("/generated/")),
    );
  }
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (f: string): void => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "visiting") {
      const cycle = stack
        .slice(stack.indexOf(f))
        .concat(f)
        .map((p) => relative(SRC, p));
      assert.fail(`import cycle: ${cycle.join(" -> ")}`);
    }
    state.set(f, "visiting");
    stack.push(f);
    for (const t of graph.get(f) ?? []) visit(t);
    stack.pop();
    state.set(f, "done");
  };
  for (const f of graph.keys()) visit(f);
});
