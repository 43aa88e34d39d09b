// A full state directory, for real: a holder process (`unshare -m`, then `sleep`) owns a
// private mount namespace with a 256 KiB tmpfs mounted over the state dir; the agent
// (`palisade agent`, a child process) runs inside that namespace via `nsenter -m`, so it can
// be killed and restarted on the same full disk. Filling it never touches the real disk, and
// the mount disappears with the holder. The test reaches the tmpfs through
// /proc/<holder>/root. The agent manages a throwaway network namespace (--netns) and talks to
// a real gRPC peer in this process (test/support/test-api.ts).
//
// Proves: with no space, nothing is applied that cannot be recorded (FAILED state_error,
// kernel unchanged); a commit that cannot be recorded after the Confirm is rolled back
// (ROLLED_BACK state_error); the results still reach the API although outbox.json cannot
// be written; the agent does not exit; and an agent SIGKILLed while waiting for a Confirm
// restarts on the full disk, rolls back before it connects and reports it.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, open, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { TestApi } from "../support/test-api.ts";
import { BIN } from "../support/fleet-processes.ts";

const policy = (port: number) => ({
  description: `enospc ${port}`,
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [{ comment: `port-${port}`, match: { protocol: "tcp", dport: port }, action: "drop" }],
    },
  },
});
const desired = (n: number, port: number) => ({
  desiredState: {
    deploymentId: `d${n}`,
    targetId: `t${n}`,
    version: { ruleset: "edge", version: n, checksum: `c${n}` },
    policyJson: JSON.stringify(policy(port)),
    confirmTimeoutSeconds: 30,
  },
});

describe("agent with a full state dir (tmpfs in a private mount namespace, kernel, grpc)", () => {
  let lab: NetnsLab;
  let ns: string;
  let dir: string;
  let api: TestApi;
  let holder: ChildProcess;
  let child: ChildProcess;
  let out = "";
  let argv: string[];
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  /** The agent's state dir as the agent sees it (the tmpfs). */
  const inside = (f = "") => join(`/proc/${holder.pid}/root`, dir, f);

  function startAgent(): void {
    out = "";
    child = spawn("nsenter", ["-t", String(holder.pid), "-m", "--", ...argv], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  }
  const list = async () =>
    (await lab.nft(ns, ["list", "table", "inet", "palisade"], undefined, { allowFailure: true })).stdout;
  const resultOf = (t: string, pred: (s: string) => boolean = () => true) =>
    api
      .waitFor((r) => r.find((x) => x.msg.applyResult?.targetId === t && pred(x.msg.applyResult.status)), 20_000)
      .catch((e: Error) => assert.fail(`${e.message}\n${out.slice(-3000)}`));

  /** Fill the tmpfs until the kernel says ENOSPC (bounded: it is 256 KiB). */
  async function fill(): Promise<void> {
    const h = await open(inside(`filler-${Date.now()}`), "w");
    const chunk = Buffer.alloc(4096, 1);
    try {
      for (let i = 0; i < 1000; i++) await h.write(chunk);
      assert.fail("the tmpfs never filled up");
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, "ENOSPC", String(e));
    } finally {
      await h.close().catch(() => {});
    }
  }

  async function free(): Promise<void> {
    for (const f of await readdir(inside())) if (f.startsWith("filler-")) await rm(inside(f));
  }

  /** A drift check round trip: the agent is alive and still handles messages. */
  async function alive(): Promise<void> {
    const n = api.of("drift").length;
    api.send({ checkDrift: {} });
    await api
      .waitFor((r) => r.filter((x) => x.msg.drift).length > n, 20_000)
      .catch((e: Error) => assert.fail(`${e.message}\n${out.slice(-3000)}`));
    assert.equal(exited(), false, `the agent exited:\n${out.slice(-3000)}`);
  }

  before(async () => {
    lab = createLab();
    ns = await lab.addNamespace();
    dir = await mkdtemp(join(tmpdir(), "palisade-enospc-"));
    api = new TestApi();
    await api.start();
    argv = [
      process.execPath,
      BIN,
      "agent",
      "--server",
      `127.0.0.1:${api.port}`,
      ...api.enrollArgs(),
      "--state-dir",
      dir,
      "--name",
      "edge-full",
      "--netns",
      ns,
      "--telemetry-interval",
      "60",
      "--drift-interval",
      "0",
    ];
    // sh mounts the tmpfs inside the new mount namespace, says so, then becomes `sleep` (exec:
    // same pid) to hold the namespace; killed in after().
    holder = spawn(
      "unshare",
      [
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount -t tmpfs -o size=256k,mode=0700 palisade-enospc "$0" && echo mounted && exec sleep 900',
        dir,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.once("data", () => resolve());
      holder.once("exit", (c) => reject(new Error(`tmpfs holder exited (${c})`)));
    });
    startAgent();
    await api
      .waitFor((r) => r.find((x) => x.msg.hello), 30_000)
      .catch((e: Error) => assert.fail(`${e.message}\n${out}`));
    // The real dir stays empty: the agent writes into its own tmpfs.
    assert.deepEqual(await readdir(dir), []);
    api.send(desired(1, 1111));
    await resultOf("t1", (s) => s === "APPLY_STATUS_APPLIED");
    assert.match(await list(), /port-1111/);
  });

  after(async () => {
    if (child && !exited() && child.pid) process.kill(child.pid, "SIGKILL");
    if (holder?.pid && holder.exitCode === null && holder.signalCode === null) process.kill(holder.pid, "SIGKILL");
    await api?.stop();
    await lab?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("no space for the pending apply: nothing applied, FAILED state_error reaches the API, the agent keeps running", async () => {
    await fill();
    api.send(desired(2, 2222));
    const r = await resultOf("t2");
    assert.equal(r.msg.applyResult.status, "APPLY_STATUS_FAILED", r.msg.applyResult.error);
    assert.match(r.msg.applyResult.error, /^state_error: .*ENOSPC/);
    const k = await list();
    assert.match(k, /port-1111/);
    assert.doesNotMatch(k, /port-2222/, "nothing applied that could not be recorded");
    assert.match(out, /cannot write the outbox to the state dir/, "the result went out without being on disk");
    await alive();
    await free();
  });

  it("no space to record the commit after the Confirm: rolled back, ROLLED_BACK state_error, the agent keeps running", async () => {
    api.autoConfirm = false;
    api.send(desired(3, 3333));
    const applying = await resultOf("t3");
    assert.equal(applying.msg.applyResult.status, "APPLY_STATUS_APPLYING");
    assert.match(await list(), /port-3333/);
    await fill();
    api.send({ confirm: { deploymentId: "d3", targetId: "t3" } });
    const r = await resultOf("t3", (s) => s !== "APPLY_STATUS_APPLYING");
    assert.equal(r.msg.applyResult.status, "APPLY_STATUS_ROLLED_BACK", r.msg.applyResult.error);
    assert.match(
      r.msg.applyResult.error,
      /^state_error: cannot record the confirmed apply.*ENOSPC.*previous ruleset restored/,
    );
    const k = await list();
    assert.match(k, /port-1111/);
    assert.doesNotMatch(k, /port-3333/);
    await alive();
    // The drift check compared against v1 (the recorded version), not the unrecorded v3.
    assert.equal(api.of("drift").at(-1)!.msg.drift.drifted, false);
    assert.deepEqual(
      (await readdir(inside())).filter((f) => f === "pending.json"),
      [],
      "no pending apply left behind",
    );
    api.autoConfirm = true;
    await free();
  });

  it("SIGKILL while waiting for a Confirm, restarted on the full disk: rolls back before connecting, reports it, keeps running", async () => {
    api.autoConfirm = false;
    api.send(desired(4, 4444));
    assert.equal((await resultOf("t4")).msg.applyResult.status, "APPLY_STATUS_APPLYING");
    assert.match(await list(), /port-4444/);
    await fill();
    const gone = new Promise<void>((r) => child.once("exit", () => r()));
    process.kill(child.pid!, "SIGKILL");
    await gone;
    assert.match(await list(), /port-4444/, "SIGKILL left the unconfirmed version in the kernel");
    const streams = Math.max(0, ...api.received.map((x) => x.stream));
    startAgent();
    const r = await api
      .waitFor((rs) => rs.find((x) => x.stream > streams && x.msg.applyResult?.targetId === "t4"), 30_000)
      .catch((e: Error) => assert.fail(`${e.message}\n${out.slice(-3000)}`));
    assert.equal(r.msg.applyResult.status, "APPLY_STATUS_ROLLED_BACK", r.msg.applyResult.error);
    assert.match(r.msg.applyResult.error, /^agent_restarted: /);
    const hello = api.received.find((x) => x.stream === r.stream && x.msg.hello)!;
    assert.equal(hello.msg.hello.applied.version, 1, "the restarted agent says hello with the version it runs");
    const k = await list();
    assert.match(k, /port-1111/);
    assert.doesNotMatch(k, /port-4444/);
    await alive();
    assert.deepEqual(
      (await readdir(inside())).filter((f) => f === "pending.json"),
      [],
      "no pending apply left behind",
    );
    api.autoConfirm = true;
    await free();
  });
});
