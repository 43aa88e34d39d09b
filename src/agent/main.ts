// runAgent(config): wires the agent together and runs until SIGTERM/SIGINT.
//
//   state dir (an unconfirmed apply left by a crash is rolled back first, recover.ts)
//   -> client (enroll, stream) -> DesiredState -> render -> pending.json -> Applier.safeApply
//   -> ApplyResult APPLYING -> API's Confirm -> applied.json -> APPLIED (or rollback, ROLLED_BACK)
//   collector (interval + before every kernel change) -> spool -> TelemetryBatch -> Ack
//   drift (interval + CheckDrift) -> DriftReport;  QuotaReset -> driver reset
//   NFLOG readers (the groups the kernel's Palisade tables log to, after every change) -> log events into the next batch

import { driver as kernel, type DriverOptions } from "../engine/index.ts";
import { packageVersion } from "../runtime/install-root.ts";
import { Applier } from "./apply.ts";
import { BanKeeper } from "./bans.ts";
import { ConditionKeeper } from "./conditions.ts";
import { answerDynamicSets } from "./dynamic-sets.ts";
import { TrapShareReporter } from "./trap-share.ts";
import { AgentClient } from "./client.ts";
import type { AgentConfig } from "./config.ts";
import { failsafeContext, renderDesired } from "./desired.ts";
import { DriftDetector } from "./drift.ts";
import { errorText } from "./errors.ts";
import { createLog, type Logger } from "../runtime/log.ts";
import { Outbox } from "./outbox.ts";
import { recoverPending, restoreAfterReboot } from "./recover.ts";
import type { AppliedVersion, Capabilities, DesiredState } from "../protocol/agent.ts";
import { StateDir } from "./state.ts";
import { Collector } from "./telemetry/collector.ts";
import { resetQuotaByName } from "./quota-reset.ts";
import { checkPrograms } from "./programs.ts";
import { LogGroups } from "./telemetry/log-groups.ts";
import { AckWatch } from "./telemetry/resend.ts";
import { Spool } from "./telemetry/spool.ts";

const AGENT_VERSION = packageVersion(import.meta.url);

/** The table the compiler renders everything into (quota names live there). */
const PALISADE_TABLE = "palisade";

export interface AgentHandle {
  stop(): Promise<void>;
  client: AgentClient;
  collector: Collector;
  applier: Applier;
  drift: DriftDetector;
  logGroups: LogGroups;
  bans: BanKeeper;
  conditions: ConditionKeeper;
  trapShare: TrapShareReporter;
}

export interface StartOptions {
  log?: Logger;
  /** PATH the agent's programs are looked up on (tests: a host without tcpdump); default process.env.PATH. */
  path?: string;
  /** Resolve reconnect timing in tests. */
  backoff?: { initialMs: number; maxMs: number };
  heartbeatMs?: number;
}

/** Start every part; resolves once enrolled and the stream loop runs. */
export async function startAgent(config: AgentConfig, opts: StartOptions = {}): Promise<AgentHandle> {
  const log = opts.log ?? createLog(config.logLevel);
  const driver: DriverOptions = config.netns ? { netns: config.netns } : {};
  const state = await StateDir.open(config.stateDir);
  const epoch = await state.epoch();
  const spool = await Spool.open(
    state.spoolDir,
    { maxBytes: config.spoolMaxBytes, maxBatches: config.spoolMaxBatches },
    log,
  );
  const collector = await Collector.create({
    driver,
    spool,
    epoch,
    log,
    resumeFile: state.path("telemetry-resume.json"),
  });
  const programs = checkPrograms(opts.path);
  for (const m of programs.missing) log.error({ program: m.program }, m.reason);
  const logGroups = new LogGroups({
    driver,
    log,
    onEvents: (e) => {
      collector.addLogs(e);
      trapShare.onEvents(e);
    },
    tcpdumpPath: programs.found.tcpdump,
    conntrackPath: programs.found.conntrack,
  });
  const applier = new Applier(kernel.nftDriver(driver), log);
  applier.hooks = {
    beforeChange: async () => {
      await collector
        .collect()
        .catch((e) => log.warn({ err: errorText(e) }, "final telemetry read before a kernel change failed"));
    },
    afterChange: async (how) => {
      if (how === "rewound") await collector.rebase();
      // Condition sets a new version brings (or a rollback restored) get the current values.
      await conditionKeeper.resync();
      // Not awaited: an apply never waits for tcpdump; logGroups.idle() does.
      void logGroups.syncFromKernel();
    },
  };
  const conditionKeeper = new ConditionKeeper(driver, (fn) => applier.exclusive(fn), log);
  // Ban lists live beside the policy in their own table; the failsafe is the same endpoint.
  const banKeeper = new BanKeeper(driver, log, () => failsafeContext(config.server, "ban table", log));
  banKeeper.onResync = () => client.resync("a ban update failed");
  // Trap hits go to the API when the confirmed policy's trap shares them (trap-share.ts).
  const trapShare = new TrapShareReporter((addresses) => client.send({ trapHits: { addresses } }), log);
  const drift = new DriftDetector(driver, applier, log, state.path("drift-baseline.json"));
  const appliedState = await state.readApplied();
  await drift.load(appliedState?.text);
  trapShare.configure(appliedState?.policyJson);

  let applied: AppliedVersion | undefined = appliedState
    ? { ruleset: appliedState.ruleset, version: appliedState.version, checksum: appliedState.checksum }
    : undefined;
  let pendingVersion: AppliedVersion | undefined;
  const confirms = new Map<string, (ok: boolean) => void>();
  // A Confirm that overtakes its apply's wait: only for a target whose version the kernel
  // holds right now (a stale Confirm must never confirm a later apply of the same target).
  const early = new Set<string>();
  const applying = new Set<string>();
  // Results are never dropped: kept in the state dir until the API acknowledged them.
  const outbox = await Outbox.open(state.path("outbox.json"), (m) => client.send(m), log);
  const results = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    const q = p.catch((e) => log.error({ err: errorText(e) }, "result not kept"));
    results.add(q);
    void q.finally(() => results.delete(q));
  };
  let caps: Capabilities | undefined;
  const capabilities = async (): Promise<Capabilities> => {
    if (!caps) {
      const c = await kernel.detectCapabilities(driver);
      caps = {
        nftVersion: c.nftVersion ?? "",
        kernel: c.kernelRelease,
        ipv6: c.ipv6,
        // `bans`: this agent applies ban updates (the API sends none to an agent without it).
        features: [
          ...Object.entries(c.features)
            .filter(([, ok]) => ok)
            .map(([f]) => f),
          "bans",
          // `conditions`: this agent fills the policy's condition sets (docs/conditions.md).
          "conditions",
          "dynamic_sets",
        ].sort(),
        xtablesModules: [],
        agentVersion: AGENT_VERSION,
        unavailable: [],
      };
    }
    // Fresh on every Hello: a log reader that failed since the last one is reported too.
    return { ...caps, unavailable: [...programs.missing, ...logGroups.unavailable()] };
  };

  const client: AgentClient = new AgentClient({
    server: config.server,
    tls: config.tls,
    name: config.name,
    ...(config.enrollToken ? { enrollToken: config.enrollToken } : {}),
    ...(config.enrollServer ? { enrollServer: config.enrollServer } : {}),
    state,
    log,
    capabilities,
    hello: async () => ({
      applied: pendingVersion ?? applied ?? { ruleset: "", version: 0, checksum: "" },
      telemetryEpoch: epoch,
      bansHeld: await banKeeper.held(),
    }),
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    backlog: () => ({ batches: spool.count, bytes: spool.bytes }),
    handlers: {
      desiredState: (m) => track(onDesired(m).catch((e) => log.error({ err: errorText(e) }, "desired state failed"))),
      confirm: (m) => {
        const k = `${m.deploymentId}/${m.targetId}`;
        const fn = confirms.get(k);
        if (fn) fn(true);
        else if (applying.has(k)) early.add(k);
      },
      checkDrift: () => track(checkDrift()),
      banUpdate: (m) => void banKeeper.update(m),
      conditionUpdate: (m) => void conditionKeeper.update(m),
      dynamicSets: (m) =>
        void answerDynamicSets(m, { driver, exclusive: (fn) => applier.exclusive(fn) }).then((r) =>
          client.send({ dynamicSets: r }),
        ),
      quotaReset: (m) =>
        track(
          resetQuotaByName(PALISADE_TABLE, m.name, driver).then(
            () => outbox.post({ quotaReset: { requestId: m.requestId, name: m.name, ok: true, error: "" } }),
            (e) =>
              outbox.post({ quotaReset: { requestId: m.requestId, name: m.name, ok: false, error: errorText(e) } }),
          ),
        ),
      telemetryAck: (m) =>
        void spool
          .ack(m.epoch, m.seq)
          .then(() => ackWatch.acked(m.seq))
          .catch((e) => log.warn({ err: errorText(e) }, "ack failed")),
      resultAck: (id) => void outbox.ack(id).catch((e) => log.warn({ err: errorText(e) }, "result ack failed")),
      disconnected: () => {
        ackWatch.stop();
        outbox.disconnected();
      },
      // Unacknowledged results first (in order), then the spooled telemetry.
      connected: () =>
        void outbox
          .flush()
          .then(resend)
          .catch((e) => log.warn({ err: errorText(e) }, "resend after connect failed")),
    },
  });

  // Sent but never acked while the stream stays up: the oldest batch goes again after the timeout.
  const ackWatch = new AckWatch({
    timeoutMs: config.telemetryAckTimeout * 1000,
    maxMs: Math.max(config.telemetryAckTimeout * 1000, 600_000),
    oldest: () => spool.oldest(),
    send: (b) => client.send({ telemetry: b }),
    log,
  });

  collector.onBatch = (b) => {
    if (client.send({ telemetry: b })) ackWatch.sent();
  };

  async function resend(): Promise<void> {
    for (const b of await spool.pending()) if (!client.send({ telemetry: b })) return;
    ackWatch.sent();
  }

  async function checkDrift(): Promise<void> {
    const r = await drift
      .check({ restore: config.driftRestore })
      .catch((e) => ({ drifted: false, details: `drift check failed: ${errorText(e)}`, restored: false }));
    await outbox.post({ drift: r });
  }

  async function onDesired(m: DesiredState): Promise<void> {
    const version = m.version ?? { ruleset: "", version: 0, checksum: "" };
    const report = (
      status: "APPLY_STATUS_APPLYING" | "APPLY_STATUS_APPLIED" | "APPLY_STATUS_FAILED" | "APPLY_STATUS_ROLLED_BACK",
      error = "",
    ) =>
      outbox.post({
        applyResult: { deploymentId: m.deploymentId, targetId: m.targetId, version, status, error, attempt: m.attempt },
      });
    const rendered = renderDesired(m.policyJson, await failsafeContext(config.server, "policy", log));
    if (!rendered.ok) return report("APPLY_STATUS_FAILED", `${rendered.code}: ${rendered.error}`);
    const key = `${m.deploymentId}/${m.targetId}`;
    let reported = false;
    const out = await applier
      .safeApply({
        text: rendered.text,
        tables: rendered.tables,
        confirmTimeoutMs: Math.max(1, m.confirmTimeoutSeconds || 60) * 1000,
        // The way back is on disk before the kernel changes (recover.ts undoes it after a crash).
        beforeApply: (snap) =>
          state.writePending({
            deploymentId: m.deploymentId,
            targetId: m.targetId,
            attempt: m.attempt,
            version,
            snapshot: snap,
            startedAt: new Date().toISOString(),
          }),
        // APPLYING = the kernel holds it, not yet committed: the API answers with Confirm and
        // counts the target applied only on the APPLIED sent after the commit below.
        onApplied: () => {
          applying.add(key);
          pendingVersion = version;
          void report("APPLY_STATUS_APPLYING");
        },
        confirmed: (ms) =>
          new Promise<boolean>((resolve) => {
            if (early.delete(key)) return resolve(true);
            const t = setTimeout(() => {
              confirms.delete(key);
              resolve(false);
            }, ms);
            confirms.set(key, (ok) => {
              clearTimeout(t);
              confirms.delete(key);
              resolve(ok);
            });
          }),
        // Inside the applier's lock: a drift check queued meanwhile sees this version as desired.
        // applied.json naming this target is the commit point; anything failing before it
        // (disk full) makes the applier roll back.
        onConfirmed: async () => {
          const before = drift.current;
          await drift.setDesired(rendered.text);
          try {
            await state.writeApplied({
              ...version,
              policyJson: m.policyJson,
              text: rendered.text,
              appliedAt: new Date().toISOString(),
              deploymentId: m.deploymentId,
              targetId: m.targetId,
            });
          } catch (e) {
            await drift.revert(before);
            throw e;
          }
          applied = version;
          pendingVersion = undefined;
          trapShare.configure(m.policyJson);
          await report("APPLY_STATUS_APPLIED");
          reported = true;
          await state.clearPending().catch((e) => log.warn({ err: errorText(e) }, "cannot remove pending.json"));
        },
        onNotApplied: async (o) => {
          pendingVersion = undefined;
          await outbox.withdrawApplying(m.targetId);
          await report(
            o.status === "rolled_back" ? "APPLY_STATUS_ROLLED_BACK" : "APPLY_STATUS_FAILED",
            `${o.code ?? "failed"}: ${o.error ?? ""}`,
          );
          reported = true;
          await state.clearPending();
        },
      })
      .finally(() => {
        applying.delete(key);
        early.delete(key);
      });
    if (out.status === "applied" || reported) return;
    await report(
      out.status === "rolled_back" ? "APPLY_STATUS_ROLLED_BACK" : "APPLY_STATUS_FAILED",
      `${out.code ?? "failed"}: ${out.error ?? ""}`,
    );
  }

  // An apply left unconfirmed by a crash is undone before the agent says hello (recover.ts).
  await recoverPending({ state, applier, outbox, log });
  // A reboot left the kernel empty: the last confirmed version goes back before the Hello.
  if (config.driftRestore) await restoreAfterReboot({ applier, driver, log }, appliedState);
  // The groups the rules in the kernel log to (the last run's ruleset), before the first
  // Hello, so a reader that cannot run is in its capabilities.
  await logGroups.syncFromKernel();
  try {
    // Enroll (or read the stored credential) first: nothing runs for an agent that cannot.
    await client.start();
  } catch (e) {
    client.stop();
    await logGroups.stop();
    throw e;
  }
  collector.start(config.telemetryInterval * 1000);
  const driftTimer =
    config.driftInterval > 0 ? setInterval(() => void checkDrift(), config.driftInterval * 1000) : undefined;
  log.info({ server: config.server, name: config.name, netns: config.netns, epoch }, "agent started");

  return {
    client,
    collector,
    applier,
    drift,
    logGroups,
    bans: banKeeper,
    conditions: conditionKeeper,
    trapShare,
    stop: async () => {
      trapShare.stop();
      if (driftTimer) clearInterval(driftTimer);
      // An apply still waiting for its Confirm is not confirmed: roll it back before exiting,
      // so a shutdown can never leave unconfirmed (possibly locking-out) rules behind.
      for (const fn of [...confirms.values()]) fn(false);
      await applier.exclusive(async () => undefined);
      // Their results (a shutdown's ROLLED_BACK) are in the outbox before the stream closes;
      // what is not acked by then goes again from the next run.
      await Promise.allSettled([...results]);
      await outbox.idle();
      banKeeper.stop();
      await banKeeper.idle();
      // Give results on a live stream a moment to be acked (else the next run resends them).
      if (client.connected) await outbox.drained(2_000);
      collector.stop();
      ackWatch.stop();
      await logGroups.stop();
      // A last reading so nothing counted since the previous interval waits for the next start.
      await collector.collect().catch(() => undefined);
      client.stop();
      log.info("agent stopped");
    },
  };
}

/** `palisade agent`: run until SIGTERM/SIGINT, then shut down cleanly. */
export async function runAgent(config: AgentConfig): Promise<void> {
  const agent = await startAgent(config);
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once("SIGTERM", done);
    process.once("SIGINT", done);
  });
  await agent.stop();
}
