// The agent's whole handling of a DesiredState, for bench/agent-apply.ts, with the parts
// src/agent/main.ts wires for it: the spaKnock verifier's facts of the applied and the new
// version (SpaVerifier.whileApplying), ApplyPipeline.apply (the render in the PolicyWorker
// thread, pending.json, Applier.safeApply on the real driver, APPLYING, the Confirm, the
// drift baseline, applied.json, APPLIED) and the facts of the applied version after it.
// Not here: the applier's kernel hooks (telemetry's read before a change, the condition
// sets' resync and the log groups after it), which need the agent's telemetry and keepers.
//
// agent-apply.ts bundles this file with esbuild as the agent is bundled, so that
// PolicyWorker starts the built worker (dist/agent/palisade-agent-render.cjs) the way the
// shipped agent does, not the TypeScript sources through tsx.
import { driver as kernel } from "../../src/engine/index.ts";
import { Applier } from "../../src/agent/apply.ts";
import { ApplyPipeline } from "../../src/agent/apply-pipeline.ts";
import { DriftDetector } from "../../src/agent/drift.ts";
import { Outbox } from "../../src/agent/outbox.ts";
import { PolicyWorker } from "../../src/agent/policy-worker.ts";
import { StateDir } from "../../src/agent/state.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import type { AgentMessage } from "../../src/protocol/agent.ts";

export interface AgentHandler {
  /** Handles one DesiredState to its APPLIED (throws on any other outcome). */
  handle(policyJson: string): Promise<void>;
  /** The render worker is running. */
  readonly workerRunning: boolean;
  /** Workers started so far. */
  readonly workersStarted: number;
  close(): Promise<void>;
}

/**
 * `mark`: called at "rendered" (the worker's render answered) and "applying" (the kernel
 * holds the new rules; the Confirm and its commit follow); the bench reads its clock there.
 */
export async function agentHandler(
  netns: string,
  stateDir: string,
  mark: (at: "rendered" | "applying") => void = () => {},
): Promise<AgentHandler> {
  const log = memoryLog("error");
  const nft = kernel.nftDriver({ netns, timeoutMs: 120_000 });
  const state = await StateDir.open(stateDir);
  const applier = new Applier(nft, log);
  const drift = new DriftDetector(nft, applier, log, state.path("drift-baseline.json"));
  const worker = new PolicyWorker(log);
  const results: string[] = [];
  let pipeline: ApplyPipeline | undefined;
  // The API's side: every APPLYING is confirmed at once.
  const send = (m: AgentMessage): boolean => {
    const r = m.applyResult;
    if (r) {
      results.push(r.status);
      if (r.status === "APPLY_STATUS_APPLYING") mark("applying");
      if (r.status === "APPLY_STATUS_APPLYING")
        setImmediate(() => pipeline!.confirm({ deploymentId: r.deploymentId, targetId: r.targetId }));
    }
    return true;
  };
  const outbox = await Outbox.open(state.path("outbox.json"), send, log);
  const failsafe = { apiAddresses: ["127.0.0.1"], apiPort: 50051 };
  pipeline = new ApplyPipeline(
    {
      state,
      applier,
      drift,
      outbox,
      log,
      failsafe: async () => failsafe,
      render: (policyJson, f) =>
        worker.render(policyJson, f).then((r) => {
          mark("rendered");
          return r;
        }),
      onConfirmed: (policyJson) => void worker.factsOf(policyJson),
    },
    undefined,
  );
  let version = 0;
  const appliedFacts = async () => worker.factsOf((await state.readApplied())?.policyJson);
  return {
    async handle(policyJson: string) {
      version++;
      results.length = 0;
      // SpaVerifier.whileApplying: the applied version's facts, the new one's, the apply, the applied one's.
      await appliedFacts();
      await worker.factsOf(policyJson);
      await pipeline!.apply({
        deploymentId: `d${version}`,
        targetId: `t${version}`,
        version: { ruleset: "bench", version, checksum: `c${version}` },
        policyJson,
        confirmTimeoutSeconds: 60,
        attempt: 1,
      });
      await appliedFacts();
      if (results.at(-1) !== "APPLY_STATUS_APPLIED") throw new Error(`apply: ${results.join(", ")}`);
    },
    get workerRunning() {
      return worker.running;
    },
    get workersStarted() {
      return worker.started;
    },
    close: () => worker.close(),
  };
}
