// The agent protocol's TypeScript (src/protocol/generated) is generated from
// proto/palisade/v1/agent.proto and committed. This regenerates it into a temporary
// directory with the same script (`npm run generate:protocol`) and fails when the
// committed copy differs: a .proto edit without regenerating, or a hand edit of the
// generated code. Also checks what the protocol promises on the wire.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, describe, it } from "node:test";
import { AgentMessage, Heartbeat, LogEvent, TelemetryBatch } from "../../src/protocol/agent.ts";

const ROOT = join(import.meta.dirname, "../..");
const COMMITTED = join(ROOT, "src/protocol/generated");

function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return out;
}

describe("generated agent protocol", () => {
  const tmp = mkdtempSync(join(tmpdir(), "palisade-protocol-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it("src/protocol/generated is what scripts/generate-protocol.sh makes from the .proto now", () => {
    execFileSync("protoc", ["--version"], { encoding: "utf8" }); // a clear failure when protobuf-compiler is missing
    execFileSync("bash", [join(ROOT, "scripts/generate-protocol.sh"), tmp], { cwd: ROOT, encoding: "utf8" });
    const fresh = tree(tmp);
    const committed = tree(COMMITTED);
    assert.deepEqual(
      [...committed.keys()].sort(),
      [...fresh.keys()].sort(),
      "generated files differ: run `npm run generate:protocol` and commit",
    );
    for (const [f, text] of fresh)
      assert.ok(
        committed.get(f) === text,
        `src/protocol/generated/${f} is stale: run \`npm run generate:protocol\` and commit`,
      );
  });

  it("uint64 round-trips above 2^53 exactly, as decimal strings", () => {
    const big = "18446744073709551615"; // 2^64 - 1
    const b = TelemetryBatch.decode(
      TelemetryBatch.encode(
        TelemetryBatch.fromPartial({
          epoch: "e",
          seq: big,
          counters: [{ name: "c", bytes: "9007199254740993", packets: "1" }],
        }),
      ).finish(),
    );
    assert.equal(b.seq, big);
    assert.equal(b.counters[0]?.bytes, "9007199254740993");
    assert.equal(Heartbeat.decode(Heartbeat.encode({ seq: "1", unixMs: "-5" }).finish()).unixMs, "-5");
  });

  it("keeps the field numbers of the .proto (an older peer decodes what a newer one sends)", () => {
    // Heartbeat{seq=1 (varint 7), unix_ms=2 (varint 9)} inside AgentMessage.heartbeat (field 2), by hand.
    const bytes = Uint8Array.from([0x12, 0x04, 0x08, 0x07, 0x10, 0x09]);
    // The backlog fields (3, 4) are proto3 optional: an older agent's heartbeat decodes with them unset.
    assert.deepEqual(AgentMessage.decode(bytes).heartbeat, {
      seq: "7",
      unixMs: "9",
      spoolBatches: undefined,
      spoolBytes: undefined,
    });
    assert.deepEqual(
      [...Heartbeat.encode({ seq: "1", unixMs: "2", spoolBatches: "3", spoolBytes: "300" }).finish()],
      [0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0xac, 0x02],
    );
    assert.equal(
      Heartbeat.decode(Heartbeat.encode({ seq: "1", unixMs: "2", spoolBatches: "0", spoolBytes: "0" }).finish())
        .spoolBatches,
      "0",
      "a reported 0 stays 0",
    );
    // LogEvent.ctmark (field 5) is proto3 optional: absent when unset, present when 0.
    assert.equal(LogEvent.decode(LogEvent.encode(LogEvent.fromPartial({ prefix: "x" })).finish()).ctmark, undefined);
    assert.equal(LogEvent.decode(LogEvent.encode(LogEvent.fromPartial({ ctmark: 0 })).finish()).ctmark, 0);
    // The loss fields are new numbers (8, 9, 10): a batch without them is what an older agent sends.
    const lossy = TelemetryBatch.encode(
      TelemetryBatch.fromPartial({ spoolDroppedBatches: "2", spoolDroppedBytes: "300", logsDropped: "4" }),
    ).finish();
    assert.deepEqual([...lossy], [0x40, 0x02, 0x48, 0xac, 0x02, 0x50, 0x04]);
  });
});
