// The enrollment token reaches the agent from the environment or a file (a flag shows in
// `ps`), and carries the CA pin after a final dot.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfig } from "../../../src/agent/config.ts";
import { defaultEnrollServer } from "../../../src/agent/client.ts";
import { joinEnrollToken, splitEnrollToken } from "../../../src/protocol/pin.ts";

const base = ["--server", "api.example.net:50051", "--state-dir", "/tmp/x", "--name", "edge"];

test("the token comes from PALISADE_ENROLL_TOKEN or from the file PALISADE_ENROLL_TOKEN_FILE names", () => {
  assert.equal(loadConfig(base, { PALISADE_ENROLL_TOKEN: "tok-env" }).enrollToken, "tok-env");
  const dir = mkdtempSync(join(tmpdir(), "palisade-token-"));
  try {
    writeFileSync(join(dir, "token"), "tok-file\n", { mode: 0o600 });
    assert.equal(loadConfig(base, { PALISADE_ENROLL_TOKEN_FILE: join(dir, "token") }).enrollToken, "tok-file");
    assert.equal(loadConfig([...base, "--enroll-token-file", join(dir, "token")], {}).enrollToken, "tok-file");
    // Enrolled agents may delete the file.
    assert.equal(loadConfig(base, { PALISADE_ENROLL_TOKEN_FILE: join(dir, "gone") }).enrollToken, undefined);
    assert.throws(
      () => loadConfig(base, { PALISADE_ENROLL_TOKEN_FILE: join(dir, "token"), PALISADE_ENROLL_TOKEN: "x" }),
      /not both/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the CA pin is the token's last dot-separated part when it is 64 hex digits", () => {
  const pin = "ab".repeat(32);
  assert.deepEqual(splitEnrollToken(joinEnrollToken("palenroll_a-b_c", pin)), { secret: "palenroll_a-b_c", pin });
  assert.deepEqual(splitEnrollToken("palenroll_abc"), { secret: "palenroll_abc", pin: undefined });
  assert.deepEqual(splitEnrollToken(`palenroll_abc.${"ab".repeat(31)}`), {
    secret: `palenroll_abc.${"ab".repeat(31)}`,
    pin: undefined,
  });
});

test("the enrollment listener defaults to the agent port + 1", () => {
  assert.equal(defaultEnrollServer("api.example.net:50051"), "api.example.net:50052");
  assert.equal(defaultEnrollServer("[2001:db8::1]:50051"), "[2001:db8::1]:50052");
  assert.equal(
    loadConfig([...base, "--enroll-server", "enroll.example.net:443"], {}).enrollServer,
    "enroll.example.net:443",
  );
});
