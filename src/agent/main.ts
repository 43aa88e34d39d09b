// runAgent(config): wires the agent together and runs until SIGTERM/SIGINT.
//
//   state dir (an unconfirmed apply left by a crash is rolled back first, recover.ts)
//   -> client (enroll, stream) -> DesiredState -> ApplyPipeline (apply-pipeline.ts):
//      render (PolicyWorker, a worker thread) -> pending.json -> Applier.safeApply -> APPLYING -> Confirm -> APPLIED / ROLLED_BACK
//   collector (interval + before every kernel change) -> spool -> TelemetryShipping -> Ack
//   DriftWatch (interval + CheckDrift) -> DriftReport;  QuotaReset -> driver reset
//   NFLOG readers (the groups the kernel's Palisade tables log to, after every change) -> log events into the next batch

import { driver as kernel, type DriverOptions } from "../engine/index.ts";
import { createLog, type Logger } from "../runtime/log.ts";
import type { Applier } from "./apply.ts";
import { ApplyPipeline } from "./apply-pipeline.ts";
import { kernelApplier } from "./kernel-applier.ts";
import { BanKeeper } from "./bans.ts";
import { hostCapabilities } from "./capabilities.ts";
import { AgentClient } from "./client.ts";
import { ConditionKeeper } from "./conditions.ts";
import { GeoKeeper } from "./geoip.ts";
import { GEOIP_STATE_FILE } from "./geoip-state.ts";
import type { AgentConfig } from "./config.ts";
import { failsafeContext } from "./desired.ts";
import { DriftDetector } from "./drift.ts";
import { DriftWatch } from "./drift-watch.ts";
import { answerDynamicSets } from "./dynamic-sets.ts";
import { errorText } from "./errors.ts";
import { Outbox } from "./outbox.ts";
import { PolicyWorker } from "./policy-worker.ts";
import { checkPrograms } from "./programs.ts";
import { quotaResetAnswerer } from "./quota-reset.ts";
import { recoverPending, restoreAfterReboot } from "./recover.ts";
import { StateDir } from "./state.ts";
import { Collector } from "./telemetry/collector.ts";
import { LogGroups } from "./telemetry/log-groups.ts";
import { SpaVerifier } from "./spa.ts";
import { TelemetryShipping } from "./telemetry/shipping.ts";
import { Spool } from "./telemetry/spool.ts";
import { TrapShareReporter } from "./trap-share.ts";

export interface AgentHandle {
  stop(): Promise<void>;
  client: AgentClient;
  collector: Collector;
  applier: Applier;
  drift: DriftDetector;
  logGroups: LogGroups;
  bans: BanKeeper;
  conditions: ConditionKeeper;
  geoip: GeoKeeper;
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
  // One Driver for the applier, telemetry, drift and quota resets (tests pass a fake).
  const nft = kernel.nftDriver(driver);
  const state = await StateDir.open(config.stateDir);
  const epoch = await state.epoch();
  const spool = await Spool.open(
    state.spoolDir,
    { maxBytes: config.spoolMaxBytes, maxBatches: config.spoolMaxBatches },
    log,
  );
  const collector = await Collector.create({
    driver: nft,
    spool,
    epoch,
    log,
    resumeFile: state.path("telemetry-resume.json"),
  });
  const programs = checkPrograms(opts.path);
  for (const m of programs.missing) log.error({ program: m.program }, m.reason);
  // spaKnock: knocks reach the verifier from the NFLOG readers; it opens ports by set elements.
  const spa = new SpaVerifier(driver, log, Date.now, {
    read: () => state.readSpaUsed(),
    write: (u) => state.writeSpaUsed(u),
  });
  await spa.load();
  const logGroups = new LogGroups({
    driver,
    log,
    onEvents: (e) => {
      collector.addLogs(e);
      trapShare.onEvents(e);
    },
    onPacket: (p) => spa.onPacket(p),
    tcpdumpPath: programs.found.tcpdump,
    setprivPath: programs.found.setpriv,
    conntrackPath: programs.found.conntrack,
  });
  // Condition sets a new version brings (or a rollback restored) get the current values.
  // Country sets likewise get the data the agent holds, and the API is asked for what is missing.
  const applier = kernelApplier(
    nft,
    {
      collector,
      logGroups,
      resync: async () => {
        await conditionKeeper.resync();
        await geoKeeper.resync();
      },
    },
    log,
  );
  const conditionKeeper = new ConditionKeeper(
    driver,
    (fn) => applier.exclusive(fn),
    log,
    state.path("conditions.json"),
  );
  const geoKeeper = new GeoKeeper(
    driver,
    (fn) => applier.exclusive(fn),
    log,
    (m) => client.send({ geoipRequest: m }),
    state.path(GEOIP_STATE_FILE),
  );
  // The last run's values and country data, before recovery, a reboot's restore or a drift
  // repair may resync the sets (conditions.ts, geoip.ts).
  await conditionKeeper.load();
  await geoKeeper.load();
  // Both failsafes: the API name's addresses (the last ones remembered when it does not
  // resolve) and the live stream's remote address.
  const apiSources = { state, peer: () => client.peer };
  // Ban lists live beside the policy in their own table; the failsafe is the same endpoint.
  const banKeeper = new BanKeeper(driver, log, () => failsafeContext(client.server, "ban table", log, apiSources));
  banKeeper.onResync = () => client.resync("a ban update failed");
  // Trap hits go to the API when the confirmed policy's trap shares them (trap-share.ts).
  const trapShare = new TrapShareReporter((addresses) => client.send({ trapHits: { addresses } }), log);
  const drift = new DriftDetector(nft, applier, log, state.path("drift-baseline.json"));
  const appliedState = await state.readApplied();
  // Validation and compiling run in a worker thread, so the resting agent holds neither.
  const policyWorker = new PolicyWorker(log);
  // The facts of the applied policy, read from the state dir each time (an apply changes it).
  const appliedFacts = async () => {
    const a = await state.readApplied();
    return policyWorker.factsOf(a?.policyJson, a);
  };
  const appliedSpa = async () => (await appliedFacts()).spa;
  // A worker that cannot run fails every render (reported); the agent still starts, and the
  // spa verifier tries its rules again with backoff (spa.ts refresh).
  await spa.refresh(appliedSpa);
  // The same for the trap sharing (trap-share.ts refresh): kept on failure, retried.
  await trapShare.refresh(async () => (await appliedFacts()).trapShare);
  await drift.load(appliedState?.text);

  // Results are never dropped: kept in the state dir until the API acknowledged them.
  const outbox = await Outbox.open(state.path("outbox.json"), (m) => client.send(m), log);
  const results = new Tasks(log);
  const answerQuotaReset = quotaResetAnswerer({ driver: nft, exclusive: (fn) => applier.exclusive(fn) }, outbox);
  const pipeline = new ApplyPipeline(
    {
      state,
      applier,
      drift,
      outbox,
      log,
      failsafe: () => failsafeContext(client.server, "policy", log, apiSources),
      render: (policyJson, failsafe) => policyWorker.render(policyJson, failsafe),
      // Known already: the spa verifier asked for this version's facts before its apply.
      // On failure the sharing held stays and the read is retried (superseded by the next one).
      onConfirmed: (policyJson, version) =>
        void trapShare.refresh(async () => (await policyWorker.factsOf(policyJson, version)).trapShare),
    },
    appliedState && { ruleset: appliedState.ruleset, version: appliedState.version, checksum: appliedState.checksum },
  );
  const driftWatch = new DriftWatch(drift, outbox, config.driftRestore);
  const telemetry = new TelemetryShipping({
    spool,
    collector,
    send: (m) => client.send(m),
    ackTimeoutMs: config.telemetryAckTimeout * 1000,
    log,
  });

  const client: AgentClient = new AgentClient({
    server: config.server,
    tls: config.tls,
    name: config.name,
    ...(config.enrollToken ? { enrollToken: config.enrollToken } : {}),
    ...(config.enrollServer ? { enrollServer: config.enrollServer } : {}),
    ...(config.tlsUpgradeSecret ? { tlsUpgradeSecret: config.tlsUpgradeSecret } : {}),
    state,
    log,
    capabilities: hostCapabilities(driver, () => [...programs.missing, ...logGroups.unavailable()]),
    hello: async () => ({ applied: pipeline.helloVersion, telemetryEpoch: epoch, bansHeld: await banKeeper.held() }),
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    backlog: () => ({ batches: spool.count, bytes: spool.bytes }),
    handlers: {
      desiredState: (m) =>
        results.track(
          spa
            .whileApplying(
              async () => (await policyWorker.factsOf(m.policyJson, m.version)).spa,
              () => pipeline.apply(m),
              appliedSpa,
            )
            .catch((e) => log.error({ err: errorText(e) }, "desired state failed")),
        ),
      confirm: (m) => pipeline.confirm(m),
      checkDrift: () => results.track(driftWatch.check()),
      banUpdate: (m) => void banKeeper.update(m),
      conditionUpdate: (m) => void conditionKeeper.update(m),
      geoipUpdate: (m) => void geoKeeper.update(m),
      dynamicSets: (m) =>
        void answerDynamicSets(m, { driver, exclusive: (fn) => applier.exclusive(fn) }).then((r) =>
          client.send({ dynamicSets: r }),
        ),
      quotaReset: (m) => results.track(answerQuotaReset(m)),
      telemetryAck: (m) => telemetry.acked(m),
      resultAck: (id) => void outbox.ack(id).catch((e) => log.warn({ err: errorText(e) }, "result ack failed")),
      disconnected: () => {
        telemetry.stop();
        outbox.disconnected();
      },
      // Unacknowledged results first (in order), then the spooled telemetry.
      connected: () => {
        void geoKeeper.connected();
        void outbox
          .flush()
          .then(() => telemetry.resend())
          .catch((e) => log.warn({ err: errorText(e) }, "resend after connect failed"));
      },
    },
  });

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
  collector.start(config.telemetryInterval * 1000, () => applier.busy);
  driftWatch.start(config.driftInterval);
  log.info({ server: client.server, name: config.name, netns: config.netns, epoch }, "agent started");

  return {
    client,
    collector,
    applier,
    drift,
    logGroups,
    bans: banKeeper,
    conditions: conditionKeeper,
    geoip: geoKeeper,
    trapShare,
    stop: () =>
      stopAgent({
        trapShare,
        driftWatch,
        pipeline,
        applier,
        results,
        outbox,
        banKeeper,
        client,
        collector,
        telemetry,
        logGroups,
        policyWorker,
        spa,
        log,
      }),
  };
}

interface Parts {
  trapShare: TrapShareReporter;
  driftWatch: DriftWatch;
  pipeline: ApplyPipeline;
  applier: Applier;
  results: Tasks;
  outbox: Outbox;
  banKeeper: BanKeeper;
  client: AgentClient;
  collector: Collector;
  telemetry: TelemetryShipping;
  logGroups: LogGroups;
  policyWorker: PolicyWorker;
  spa: SpaVerifier;
  log: Logger;
}

/** Shut down in the order that keeps every result and never leaves an unconfirmed apply behind. */
async function stopAgent(p: Parts): Promise<void> {
  p.trapShare.stop();
  p.driftWatch.stop();
  // An apply still waiting for its Confirm is not confirmed: roll it back before exiting,
  // so a shutdown can never leave unconfirmed (possibly locking-out) rules behind.
  p.applier.close();
  p.pipeline.refuseWaiting();
  await p.applier.exclusive(async () => undefined);
  // Their results (a shutdown's ROLLED_BACK) are in the outbox before the stream closes;
  // what is not acked by then goes again from the next run.
  await p.results.settled();
  await p.outbox.idle();
  p.banKeeper.stop();
  await p.banKeeper.idle();
  // Give results on a live stream a moment to be acked (else the next run resends them).
  if (p.client.connected) await p.outbox.drained(2_000);
  p.collector.stop();
  p.telemetry.stop();
  await p.logGroups.stop();
  // A last reading so nothing counted since the previous interval waits for the next start.
  await p.collector.collect().catch(() => undefined);
  p.client.stop();
  p.spa.stop();
  await p.policyWorker.close();
  p.log.info("agent stopped");
}

/** Work started by stream messages, which a shutdown waits for; a failure is logged, never thrown. */
class Tasks {
  private readonly running = new Set<Promise<void>>();
  constructor(private readonly log: Logger) {}

  track(p: Promise<void>): void {
    const q = p.catch((e) => this.log.error({ err: errorText(e) }, "result not kept"));
    this.running.add(q);
    void q.finally(() => this.running.delete(q));
  }

  settled(): Promise<unknown> {
    return Promise.allSettled([...this.running]);
  }
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
