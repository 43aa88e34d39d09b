// The CLI's pure helpers: times in and out, tables, the error printer and its exit
// statuses, label patches, diff arguments and lines.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type CliError, describeError, EXIT } from "../../../src/cli/errors.ts";
import { table } from "../../../src/cli/output.ts";
import { RestError } from "../../../src/cli/rest.ts";
import { parseDuration, parseWhen, relative } from "../../../src/cli/time.ts";
import { labelPatch } from "../../../src/cli/commands/hosts.ts";
import { diffLines, diffQuery, hostDiffPlan } from "../../../src/cli/commands/diff.ts";

const NOW = Date.parse("2026-12-03T08:00:00.000Z");

test("parseWhen: durations back from now, RFC 3339 with a zone, anything else a usage error", () => {
  assert.equal(parseWhen("1h", "--since", NOW), "2026-12-03T07:00:00.000Z");
  assert.equal(parseWhen("2d", "--from", NOW), "2026-12-01T08:00:00.000Z");
  assert.equal(parseWhen("2026-12-03T09:00:00+01:00", "--from", NOW), "2026-12-03T08:00:00.000Z");
  assert.equal(parseWhen(undefined, "--from", NOW), undefined);
  for (const bad of ["yesterday", "1 h", "2026-12-03 08:00", "-1h"]) {
    assert.throws(
      () => parseWhen(bad, "--since", NOW),
      (e: CliError) => e.code === "usage" && e.exit === EXIT.usage && e.message.includes(bad),
    );
  }
  assert.equal(parseDuration("90s", "--ttl"), 90);
  assert.equal(parseDuration("1d", "--ttl"), 86_400);
  assert.throws(() => parseDuration("soon", "--ttl"), /not a duration/);
});

test("relative: past and future, nothing as -", () => {
  assert.equal(relative("2026-12-03T07:57:00.000Z", NOW), "3m ago");
  assert.equal(relative("2026-12-04T07:00:00.000Z", NOW), "in 23h");
  assert.equal(relative("2026-11-30T08:00:00.000Z", NOW), "3d ago");
  assert.equal(relative(null, NOW), "-");
});

test("table: header, aligned columns, wide-only columns, - for empty", () => {
  const cols = [
    { header: "NAME", value: (x: { n: string; v: string | null }) => x.n },
    { header: "VALUE", value: (x: { n: string; v: string | null }) => x.v },
    { header: "MORE", value: () => "m", wide: true },
  ];
  const rows = [
    { n: "a", v: "1" },
    { n: "longer", v: null },
  ];
  assert.equal(table(rows, cols), "NAME    VALUE\na       1\nlonger  -\n");
  assert.equal(table(rows, cols, true), "NAME    VALUE  MORE\na       1      m\nlonger  -      m\n");
});

test("describeError: one error line, details, hint, and the exit status of each kind", () => {
  const invalid = describeError(
    new RestError(422, "invalid_policy", "the policy is invalid", [
      { path: "/chains/input/policy", code: "invalid_enum", message: "accept or drop" },
    ]),
  );
  assert.equal(
    invalid.text,
    "error: invalid_policy: the policy is invalid\n  /chains/input/policy: accept or drop (invalid_enum)\n",
  );
  assert.equal(invalid.exit, EXIT.invalid);
  assert.equal(describeError(new RestError(404, "not_found", 'host "x" not found')).exit, EXIT.notFound);
  assert.equal(describeError(new RestError(503, "unavailable", "db down")).exit, EXIT.unavailable);
  assert.equal(
    describeError(new RestError(503, "not_capable", "no CAP_NET_ADMIN")).exit,
    EXIT.unavailable,
    "an unknown code falls back to the HTTP status",
  );
  assert.equal(describeError(new RestError(418, "teapot", "no")).exit, EXIT.invalid);
  const denied = describeError(new RestError(401, "unauthorized", "unknown token"));
  assert.equal(denied.exit, EXIT.denied);
  assert.match(denied.text, /\nhint: pass --token/);
  const file = describeError(
    Object.assign(new Error("ENOENT: no such file or directory, open 'x.yaml'"), { code: "ENOENT" }),
  );
  assert.deepEqual(
    [file.text, file.exit],
    ["error: file_not_found: ENOENT: no such file or directory, open 'x.yaml'\n", EXIT.notFound],
  );
  const plain = describeError(new TypeError("boom"));
  assert.deepEqual([plain.text, plain.exit], ["error: error: boom\n", EXIT.generic]);
  // A verb's bundle has its own copy of CliError: the printer goes by the registered mark, not the class.
  const foreign = Object.assign(new Error("elsewhere"), {
    [Symbol.for("palisade.cli-error")]: true,
    code: "conflict",
    exit: EXIT.invalid,
    details: [],
    hint: "do this",
  });
  assert.equal(describeError(foreign).text, "error: conflict: elsewhere\nhint: do this\n");
});

test("labelPatch: k=v sets, k- removes, anything else is a usage error", () => {
  assert.deepEqual(labelPatch(["env=prod", "zone-", "empty="]), { env: "prod", zone: null, empty: "" });
  assert.throws(() => labelPatch(["=x"]), /neither key=value/);
  assert.throws(() => labelPatch([]), /at least one/);
});

test("diff: arguments and lines", () => {
  assert.deepEqual(diffQuery("web", undefined), { ruleset: "web", from: undefined, to: undefined });
  assert.deepEqual(diffQuery("web@2", "@5"), { ruleset: "web", from: 2, to: 5 });
  assert.deepEqual(diffQuery("web@2", "web@5"), { ruleset: "web", from: 2, to: 5 });
  assert.throws(() => diffQuery("web@2", "api@5"), /second version/);
  assert.throws(() => diffQuery("web", "@5"), /first version too/);
  assert.deepEqual(
    diffLines({
      ruleset: "web",
      from: 1,
      to: 2,
      changes: [
        { op: "add", path: "/a", to: 1 },
        { op: "remove", path: "/b", from: "x" },
        { op: "change", path: "/c", from: 1, to: 2 },
      ],
    }),
    ["web@1 -> web@2: 3 change(s)", "+ /a: 1", '- /b: "x"', "~ /c: 1 -> 2"],
  );
});

test("idempotentPost: one Idempotency-Key for every try; retried on 503 and when unreachable, not on 4xx", async () => {
  const { createServer } = await import("node:http");
  const { idempotentPost, Rest } = await import("../../../src/cli/rest.ts");
  const seen: { key: string | undefined; n: number }[] = [];
  let answers: number[] = [];
  const server = createServer((req, res) => {
    seen.push({ key: req.headers["idempotency-key"] as string | undefined, n: seen.length });
    const status = answers.shift() ?? 202;
    res.writeHead(status, { "content-type": "application/json" });
    res.end(
      JSON.stringify(
        status === 202
          ? { id: "d1", targets: 1 }
          : { error: { code: status === 503 ? "unavailable" : "invalid_request", message: "no", details: [] } },
      ),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  try {
    const port = (server.address() as { port: number }).port;
    const rest = new Rest({ server: `http://127.0.0.1:${port}`, token: "t" }, {});
    const slept: number[] = [];
    const sleep = async (ms: number) => void slept.push(ms);
    answers = [503, 503];
    assert.deepEqual(await idempotentPost(rest, "/v1/deployments", {}, sleep), { id: "d1", targets: 1 });
    assert.equal(seen.length, 3);
    assert.match(seen[0]!.key ?? "", /^[0-9a-f-]{36}$/);
    assert.ok(
      seen.every((s) => s.key === seen[0]!.key),
      "the same key on every try",
    );
    assert.deepEqual(slept, [1000, 3000]);

    seen.length = 0;
    answers = [400];
    await assert.rejects(
      idempotentPost(rest, "/v1/deployments", {}, sleep),
      (e: CliError) => e.code === "invalid_request",
    );
    assert.equal(seen.length, 1, "a refused request is not retried");

    seen.length = 0;
    answers = [503, 503, 503];
    await assert.rejects(
      idempotentPost(rest, "/v1/deployments", {}, sleep),
      (e: CliError) => e.code === "unavailable" && e.exit === EXIT.unavailable,
    );
    assert.equal(seen.length, 3, "at most three tries");
  } finally {
    await new Promise((r) => server.close(r));
  }
  // Nothing listens: unreachable, retried, then reported.
  const closed = new Rest({ server: "http://127.0.0.1:9", token: "t" }, {});
  let tries = 0;
  await assert.rejects(
    idempotentPost(closed, "/v1/deployments", {}, async () => void tries++),
    (e: CliError) => e.code === "unreachable",
  );
  assert.equal(tries, 2);
});

test("hostDiffPlan: what to compare on a host, and what to say when there is nothing to", () => {
  const h = (desired: [string, number] | null, applied: [string, number] | null, drift = false) => ({
    name: "h",
    desiredVersion: desired && { ruleset: desired[0], version: desired[1] },
    appliedVersion: applied && { ruleset: applied[0], version: applied[1] },
    drift,
  });
  assert.deepEqual(hostDiffPlan("web", h(["web", 3], ["web", 2])).versions, { from: 2, to: 3 });
  assert.equal(hostDiffPlan("web", h(["web", 3], ["web", 3])).note, "applied = desired");
  assert.equal(hostDiffPlan("web", h(["web", 3], null)).note, "nothing applied yet");
  assert.match(hostDiffPlan("web", h(["web", 3], ["api", 1])).note ?? "", /different rulesets/);
  assert.match(hostDiffPlan("web", h(["web", 1], ["web", 1], true)).header, /kernel DRIFTED/);
  assert.throws(
    () => hostDiffPlan("db", h(["web", 3], ["web", 2])),
    (e: CliError) => e.exit === EXIT.notFound,
  );
});
