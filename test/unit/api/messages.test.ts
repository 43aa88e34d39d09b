// Agent messages are bounded before anything is written: a body is required, ids are
// UUIDs, results carry a safe result_id, and a bad field is named in the error.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MalformedMessage, parseAgentMessage } from "../../../src/api/grpc/messages.ts";
import type { AgentMessage } from "../../../src/protocol/agent.ts";

const msg = (m: Record<string, unknown>) => m as unknown as AgentMessage;
const UUID = "5b0b7a53-3a3e-4f44-9d8b-3f3a4b7c1e2d";
const result = (o: Record<string, unknown> = {}) => ({
  deploymentId: UUID,
  targetId: UUID,
  version: { ruleset: "edge", version: 2, checksum: "c" },
  status: "APPLY_STATUS_APPLIED",
  error: "",
  resultId: "r-1",
  ...o,
});

test("a message without a body is malformed", () => {
  assert.throws(() => parseAgentMessage(msg({})), MalformedMessage);
  assert.throws(() => parseAgentMessage(msg({ hello: null, heartbeat: undefined })), /no body/);
});

test("an apply result parses; attempt defaults to 0 (older agents)", () => {
  const r = parseAgentMessage(msg({ applyResult: result() }));
  assert.equal(r.kind, "applyResult");
  assert.equal(r.kind === "applyResult" && r.applyResult.attempt, 0);
  const r2 = parseAgentMessage(msg({ applyResult: result({ attempt: 3, deploymentId: "", targetId: "" }) }));
  assert.equal(r2.kind === "applyResult" && r2.applyResult.attempt, 3);
});

test("bad fields are named: deployment id, status, result id, oversized error", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [result({ deploymentId: "not-a-uuid" }), /applyResult\.deploymentId/],
    [result({ status: "APPLY_STATUS_MAYBE" }), /applyResult\.status/],
    [result({ resultId: "a b" }), /applyResult\.resultId/],
    [result({ resultId: "x".repeat(65) }), /applyResult\.resultId/],
    [result({ error: "e".repeat(64 * 1024 + 1) }), /applyResult\.error/],
    [result({ attempt: 2 ** 32 }), /applyResult\.attempt/],
  ];
  for (const [body, re] of cases)
    assert.throws(
      () => parseAgentMessage(msg({ applyResult: body })),
      (e: Error) => e instanceof MalformedMessage && re.test(e.message),
      re.source,
    );
});

test("heartbeat numbers are decimal strings", () => {
  assert.equal(parseAgentMessage(msg({ heartbeat: { seq: "12", unixMs: "1700000000000" } })).kind, "heartbeat");
  assert.throws(() => parseAgentMessage(msg({ heartbeat: { seq: "1e3", unixMs: "0" } })), /heartbeat\.seq/);
  assert.throws(() => parseAgentMessage(msg({ heartbeat: { seq: "1".repeat(21), unixMs: "0" } })), /heartbeat\.seq/);
});

test("hello: capabilities' unavailable list defaults to empty; lists are bounded", () => {
  const caps = {
    nftVersion: "1.1.1",
    kernel: "6.1",
    ipv6: true,
    features: ["sets"],
    xtablesModules: [],
    agentVersion: "0.1.0",
  };
  const h = parseAgentMessage(msg({ hello: { capabilities: caps, applied: null, telemetryEpoch: "e1" } }));
  assert.deepEqual(h.kind === "hello" && h.hello.capabilities?.unavailable, []);
  assert.throws(
    () =>
      parseAgentMessage(
        msg({ hello: { capabilities: { ...caps, features: Array(513).fill("f") }, telemetryEpoch: "e1" } }),
      ),
    /hello\.capabilities\.features/,
  );
});

test("telemetry passes through unvalidated here (the telemetry service checks batches itself)", () => {
  const batch = { epoch: "e", seq: "1" };
  const r = parseAgentMessage(msg({ telemetry: batch }));
  assert.equal(r.kind === "telemetry" && r.telemetry, batch);
});

test("quota reset and drift results carry a safe result id", () => {
  assert.equal(
    parseAgentMessage(msg({ drift: { drifted: true, details: "x", restored: false, resultId: "" } })).kind,
    "drift",
  );
  assert.throws(
    () => parseAgentMessage(msg({ quotaReset: { requestId: "r", name: "q", ok: true, error: "", resultId: "../x" } })),
    /quotaReset\.resultId/,
  );
});
