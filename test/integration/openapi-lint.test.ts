// The OpenAPI document as served: every operation named (operationId) and summarised,
// every response described, the SSE stream documented as text/event-stream, and
// Redocly's recommended ruleset (`redocly lint`, a dev dependency) reports no error.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestApp, type TestApp } from "../support/app.ts";

const METHODS = ["get", "post", "put", "patch", "delete"];
type Operation = {
  operationId?: string;
  summary?: string;
  responses: Record<string, { description: string; content?: Record<string, unknown> }>;
};

let t: TestApp;
let doc: { paths: Record<string, Record<string, Operation>> };
before(async () => {
  t = await startTestApp();
  doc = (await t.req("GET", "/openapi.json", { as: null })).json();
});
after(async () => {
  await t?.close();
});

const operations = () =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([m]) => METHODS.includes(m))
      .map(([method, op]) => ({ where: `${method.toUpperCase()} ${path}`, op })),
  );

describe("OpenAPI document", () => {
  test("every operation has a unique operationId, a summary and described responses", () => {
    const ops = operations();
    assert.ok(ops.length >= 30, `${ops.length} operations`);
    const ids = new Set<string>();
    for (const { where, op } of ops) {
      assert.match(op.operationId ?? "", /^[a-z][A-Za-z]+$/, `${where}: operationId`);
      assert.ok(!ids.has(op.operationId!), `${where}: operationId ${op.operationId} used twice`);
      ids.add(op.operationId!);
      assert.ok((op.summary ?? "").length > 5, `${where}: summary`);
      for (const [status, r] of Object.entries(op.responses)) {
        assert.notEqual(r.description, "Default Response", `${where} ${status}: a real description`);
        assert.ok(r.description.length > 5, `${where} ${status}: description`);
      }
    }
  });

  test("the log stream is documented as text/event-stream", () => {
    const stream = doc.paths["/v1/logs/stream"]!.get!;
    assert.ok(stream.responses["200"]?.content?.["text/event-stream"], JSON.stringify(stream.responses["200"]));
  });

  test("redocly lint (recommended rules) reports no error", () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-openapi-"));
    try {
      const file = join(dir, "openapi.json");
      writeFileSync(file, JSON.stringify(doc));
      const cli = join(dirname(createRequire(import.meta.url).resolve("@redocly/cli/package.json")), "bin/cli.js");
      const r = spawnSync(process.execPath, [cli, "lint", file, "--format=stylish"], {
        encoding: "utf8",
        env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_COLOR: "1" },
      });
      const out = `${r.stdout}${r.stderr}`;
      assert.equal(r.status, 0, out);
      assert.doesNotMatch(out, /\berror\b.*\S+\s{2,}/, out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
