// The spaKnock verifier's checks (pure part; the kernel test proves the port opens).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { policyFacts } from "../../../src/agent/render.ts";
import { MAX_PER_SECOND, PER_SOURCE_PER_SECOND, SpaVerifier, type SpaRule } from "../../../src/agent/spa.ts";
import { StateDir, type SpaUsed } from "../../../src/agent/state.ts";
import type { NflogPacket } from "../../../src/agent/telemetry/nflog.ts";
import { spaLogPrefix } from "../../../src/engine/index.ts";
import { memoryLog } from "../../../src/runtime/log.ts";

const SRC = [192, 0, 2, 7];
/** An IPv4/UDP packet from 192.0.2.7 carrying `data`. */
function packet(data: Buffer, src = SRC): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from(src).copy(ip, 12);
  Buffer.from([198, 51, 100, 1]).copy(ip, 16);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(4000, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  return Buffer.concat([ip, udp, data]);
}
/** The knock as the manual describes it, written out here independently of the verifier. */
function knock(secret: string, minute: number, src = SRC): Buffer {
  const msg = Buffer.concat([Buffer.from(src), Buffer.from(new Uint32Array([minute]).buffer)]);
  return Buffer.from(`${createHmac("sha256", secret).update(msg).digest("hex")}\0`);
}

const T = Date.UTC(2026, 11, 3, 12, 0, 30);
const minute = Math.floor(T / 60_000);
const verifier = (now = () => T) => {
  const v = new SpaVerifier({}, memoryLog(), now);
  v.configure([{ name: "FTP", openSecret: "o-secret", closeSecret: "c-secret" }]);
  return v;
};

test("open and close knocks of this minute and the last one are accepted, once each", () => {
  const v = verifier();
  assert.deepEqual(v.verify("FTP", packet(knock("o-secret", minute))), { kind: "open", source: "192.0.2.7" });
  assert.deepEqual(v.verify("FTP", packet(knock("c-secret", minute - 1))), { kind: "close", source: "192.0.2.7" });
  const again = v.verify("FTP", packet(knock("o-secret", minute)));
  assert.equal(again.kind, "refused");
  assert.match((again as { reason: string }).reason, /replayed open knock/);
});

test("too old, from the future, wrong secret, other address, other rule: refused", () => {
  const v = verifier();
  for (const [payload, why] of [
    [packet(knock("o-secret", minute - 2)), /wrong secret|clock/],
    [packet(knock("o-secret", minute + 1)), /wrong secret|clock/],
    [packet(knock("x-secret", minute)), /wrong secret/],
    [packet(knock("o-secret", minute, [192, 0, 2, 8])), /wrong secret/],
  ] as const) {
    const o = v.verify("FTP", payload);
    assert.equal(o.kind, "refused");
    assert.match((o as { reason: string }).reason, why);
  }
  assert.match((v.verify("SSH", packet(knock("o-secret", minute))) as { reason: string }).reason, /no spaKnock rule/);
});

test("payloads that are not 64 hex digits, and non-IPv4 packets, are refused", () => {
  const v = verifier();
  const good = knock("o-secret", minute);
  for (const data of [
    good.subarray(0, 63),
    Buffer.concat([good, Buffer.from("x")]),
    Buffer.from(good.toString().toUpperCase()),
  ])
    assert.equal(v.verify("FTP", packet(data)).kind, "refused");
  const v6 = Buffer.alloc(60);
  v6[0] = 0x60;
  assert.match((v.verify("FTP", v6) as { reason: string }).reason, /IPv4 UDP/);
  // A knock with no NUL (64 digits) is accepted as well.
  assert.equal(v.verify("FTP", packet(good.subarray(0, 64))).kind, "open");
});

test("a knock in a fragment is refused; one behind IPv4 options is read after them", () => {
  const v = verifier();
  const k = packet(knock("o-secret", minute));
  for (const flagsFrag of [0x2000, 0x0001]) {
    const frag = Buffer.from(k);
    frag.writeUInt16BE(flagsFrag, 6); // MF alone; an offset alone (a later piece)
    const o = v.verify("FTP", frag);
    assert.equal(o.kind, "refused");
    assert.match((o as { reason: string }).reason, /fragment/);
    assert.equal(o.source, "192.0.2.7");
  }
  // The same datagram with 8 bytes of options (IHL 7): accepted, so the payload was found after them.
  const withOptions = Buffer.concat([k.subarray(0, 20), Buffer.alloc(8, 1), k.subarray(20)]);
  withOptions[0] = 0x47;
  withOptions.writeUInt16BE(withOptions.length, 2);
  assert.deepEqual(v.verify("FTP", withOptions), { kind: "open", source: "192.0.2.7" });
});

test("replay memory is dropped once a minute can no longer be accepted", () => {
  let now = T;
  const v = verifier(() => now);
  const k = packet(knock("o-secret", minute));
  assert.equal(v.verify("FTP", k).kind, "open");
  now += 60_000;
  assert.equal(v.verify("FTP", k).kind, "refused", "still inside the window: replay");
  now += 60_000;
  assert.equal(v.verify("FTP", k).kind, "refused", "out of the window: too old");
});

test("policyFacts reads the spaKnock rules of a policy and nothing from an invalid one", () => {
  const doc = {
    chains: {},
    protections: {
      spaKnock: [{ name: "FTP", knockPort: 4000, port: 21, openSecret: "a", closeSecret: "b" }],
    },
  };
  assert.deepEqual(policyFacts(JSON.stringify(doc)).spa, [{ name: "FTP", openSecret: "a", closeSecret: "b" }]);
  assert.deepEqual(policyFacts("{").spa, []);
  assert.deepEqual(policyFacts(undefined).spa, []);
});

test("an accepted knock stays spent across a restart: the digests are in the state dir (0600)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "palisade-spa-"));
  try {
    const state = new StateDir(dir);
    const store = { read: () => state.readSpaUsed(), write: (u: SpaUsed) => state.writeSpaUsed(u) };
    const first = new SpaVerifier({}, memoryLog(), () => T, store);
    first.configure([{ name: "FTP", openSecret: "o-secret", closeSecret: "c-secret" }]);
    await first.load();
    assert.equal(first.verify("FTP", packet(knock("o-secret", minute))).kind, "open");
    await first.persist();
    assert.equal((await stat(join(dir, "spa-used.json"))).mode & 0o777, 0o600);

    // The agent restarts within the same minute: the captured knock is replayed.
    const second = new SpaVerifier({}, memoryLog(), () => T + 5_000, store);
    second.configure([{ name: "FTP", openSecret: "o-secret", closeSecret: "c-secret" }]);
    await second.load();
    const replay = second.verify("FTP", packet(knock("o-secret", minute)));
    assert.equal(replay.kind, "refused");
    assert.match((replay as { reason: string }).reason, /replayed open knock/);
    assert.equal(second.verify("FTP", packet(knock("c-secret", minute))).kind, "close", "other knocks still work");

    // Two minutes later the digest is out of the window and dropped from the file.
    const later = new SpaVerifier({}, memoryLog(), () => T + 180_000, store);
    await later.load();
    await later.persist();
    assert.deepEqual(await state.readSpaUsed(), {});
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a flood from one source uses only its own budget: another source's knock is still checked", async () => {
  const v = verifier();
  const checked: string[] = [];
  v.onOutcome = (o) => checked.push(o.source);
  // Half the second's budget used by many sources first: the per-source cap applies from here.
  for (let i = 0; i < MAX_PER_SECOND / 2; i++)
    v.onPacket({
      prefix: spaLogPrefix("FTP"),
      payload: packet(Buffer.alloc(64, 0x61), [10, 1, Math.floor(i / 250), i % 250]),
    } as NflogPacket);
  await v.idle();
  checked.length = 0;
  const flood = [10, 0, 0, 66];
  for (let i = 0; i < 50; i++)
    v.onPacket({ prefix: spaLogPrefix("FTP"), payload: packet(Buffer.alloc(64, 0x61), flood) } as NflogPacket);
  v.onPacket({ prefix: spaLogPrefix("FTP"), payload: packet(Buffer.alloc(64, 0x62)) } as NflogPacket);
  await v.idle();
  assert.equal(checked.filter((s) => s === "10.0.0.66").length, PER_SOURCE_PER_SECOND, "the flooding source is capped");
  assert.deepEqual(
    checked.filter((s) => s !== "10.0.0.66"),
    ["192.0.2.7"],
    "the other source is checked",
  );
});

test("without pressure no source is capped: a few forged knocks cannot silence a client's real one", async () => {
  const v = verifier();
  const checked: string[] = [];
  v.onOutcome = (o) => checked.push(o.source);
  // Refused knocks only: an accepted one would change a kernel set, and this test has none.
  for (let i = 0; i < 11; i++)
    v.onPacket({ prefix: spaLogPrefix("FTP"), payload: packet(Buffer.alloc(64, 0x61)) } as NflogPacket);
  await v.idle();
  assert.equal(checked.length, 11, "every knock of the source was checked, past the per-source cap");
});

/** The retry timers are unref'd (they never hold a stopping agent): the tests keep the loop alive. */
function keepAlive(): () => void {
  const t = setInterval(() => undefined, 1000);
  return () => clearInterval(t);
}

/** `applied` that fails `failures` times, then answers `rules`; `done` resolves with its last call. */
function flaky(failures: number, rules: SpaRule[]) {
  let calls = 0;
  let answered: () => void = () => {};
  const done = new Promise<void>((r) => (answered = r));
  const applied = async () => {
    calls++;
    if (calls <= failures) throw new Error("render worker stopped: exit 1");
    setImmediate(answered);
    return rules;
  };
  return { applied, done, calls: () => calls };
}

const FTP = { name: "FTP", openSecret: "o-secret", closeSecret: "c-secret" };
const SSH = { name: "SSH", openSecret: "o2", closeSecret: "c2" };

test("a failed read of the applied rules after an apply keeps the rules held and is tried again with backoff", async () => {
  const release = keepAlive();
  const log = memoryLog();
  const v = new SpaVerifier({}, log, () => T, undefined, { firstMs: 1, maxMs: 4 });
  v.configure([FTP]);
  const after = flaky(4, [FTP, SSH]);
  let first = true;
  // Before the apply the applied rules read fine; the new version's too; afterwards the
  // worker fails four times.
  await v.whileApplying(
    async () => [SSH],
    async () => undefined,
    async () => {
      if (first) {
        first = false;
        return [FTP];
      }
      return after.applied();
    },
  );
  // The worker failed once after the apply: the rules held during it stay, not none.
  assert.deepEqual(v.ruleNames().sort(), ["FTP", "SSH"]);
  assert.equal(v.verify("FTP", packet(knock("o-secret", minute))).kind, "open");
  await after.done;
  assert.equal(after.calls(), 5);
  assert.deepEqual(v.ruleNames().sort(), ["FTP", "SSH"]);
  const failures = log.lines.filter((l) => /cannot read the applied policy's spaKnock rules/.test(String(l.msg)));
  assert.deepEqual(
    failures.map((l) => l.retryInMs),
    [1, 2, 4, 4],
    "doubling, capped",
  );
  assert.deepEqual(failures[0]!.keptRules, ["FTP", "SSH"]);
  assert.match(String(failures[0]!.err), /render worker stopped/);
  assert.match(String(failures[0]!.msg), /tried again/);
  release();
});

test("at start a failed read keeps trying until the rules are read; a later apply supersedes the retry", async () => {
  const release = keepAlive();
  const v = new SpaVerifier({}, memoryLog(), () => T, undefined, { firstMs: 1, maxMs: 2 });
  const start = flaky(2, [FTP]);
  await v.refresh(start.applied);
  assert.deepEqual(v.ruleNames(), [], "nothing known yet");
  await start.done;
  assert.deepEqual(v.ruleNames(), ["FTP"]);

  // A retry still pending when an apply comes is dropped: the apply reads the rules itself.
  const stale = flaky(1000, []);
  await v.refresh(stale.applied);
  assert.deepEqual(v.ruleNames(), ["FTP"], "kept on failure");
  await v.whileApplying(
    async () => [SSH],
    async () => undefined,
    async () => [SSH],
  );
  const calls = stale.calls();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(stale.calls(), calls, "the superseded retry stopped");
  assert.deepEqual(v.ruleNames(), ["SSH"]);
  v.stop();
  release();
});

test("an apply rolled back (or throwing) whose read then fails goes back to the rules of before it", async () => {
  const release = keepAlive();
  try {
    const FTP2 = { name: "FTP", openSecret: "new-open", closeSecret: "new-close" };
    for (const apply of [async () => false, async () => Promise.reject(new Error("state dir full"))]) {
      const log = memoryLog();
      const v = new SpaVerifier({}, log, () => T, undefined, { firstMs: 1, maxMs: 2 });
      v.configure([FTP]);
      const after = flaky(3, [FTP]);
      let first = true;
      await v
        .whileApplying(
          async () => [FTP2],
          async () => {
            // During the apply the new version's secret wins on the shared name.
            assert.equal(v.verify("FTP", packet(knock("new-open", minute))).kind, "open");
            return apply();
          },
          async () => {
            if (first) {
              first = false;
              return [FTP];
            }
            return after.applied();
          },
        )
        .catch(() => undefined);
      // The kernel holds the old secret again: its knock is accepted, the new one's is not.
      assert.equal(v.verify("FTP", packet(knock("o-secret", minute))).kind, "open");
      assert.equal(v.verify("FTP", packet(knock("new-open", minute - 1))).kind, "refused");
      const failure = log.lines.find((l) => /cannot read the applied policy's spaKnock rules/.test(String(l.msg)));
      assert.deepEqual(failure?.keptRules, ["FTP"]);
      await after.done;
      assert.equal(v.verify("FTP", packet(knock("o-secret", minute - 1))).kind, "open");
      v.stop();
    }
  } finally {
    release();
  }
});
