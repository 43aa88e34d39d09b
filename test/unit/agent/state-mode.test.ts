// The state files holding the policy document (spaKnock secrets in it) are private to
// the agent's user, whatever the umask; so is anything else written atomically.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StateDir } from "../../../src/agent/state.ts";
import { writeFileAtomic } from "../../../src/agent/atomic.ts";

const policyJson = JSON.stringify({ protections: { spaKnock: [{ name: "ssh", openSecret: "s3cret-open" }] } });

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "palisade-state-mode-"));
  const old = process.umask(0o022);
  try {
    await fn(dir);
  } finally {
    process.umask(old);
    await rm(dir, { recursive: true, force: true });
  }
}

const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

test("applied.json and pending.json are written 0600, also over an older 0644 file", async () => {
  await withDir(async (dir) => {
    const s = await StateDir.open(dir);
    await writeFile(s.path("applied.json"), "{}", { mode: 0o644 });
    await s.writeApplied({
      ruleset: "r",
      version: 1,
      checksum: "c",
      policyJson,
      text: "",
      appliedAt: new Date(0).toISOString(),
    });
    assert.equal(await modeOf(s.path("applied.json")), 0o600);
    assert.equal((await s.readApplied())?.policyJson, policyJson);
    await s.writePending({
      deploymentId: "d",
      targetId: "t",
      version: { ruleset: "r", version: 1, checksum: "c" },
      snapshot: { tables: [], text: "", takenAt: new Date(0).toISOString() } as never,
      startedAt: new Date(0).toISOString(),
    });
    assert.equal(await modeOf(s.path("pending.json")), 0o600);
  });
});

test("writeFileAtomic defaults to 0600 and honours an explicit mode", async () => {
  await withDir(async (dir) => {
    await writeFileAtomic(join(dir, "a"), "x");
    assert.equal(await modeOf(join(dir, "a")), 0o600);
    await writeFileAtomic(join(dir, "b"), "x", 0o640);
    assert.equal(await modeOf(join(dir, "b")), 0o640);
  });
});
