// One DesiredState through the agent's ApplyPipeline on a FakeDriver (no root): what it
// reported and what the kernel holds afterwards. For tests of the render step's failures.
import { ApplyPipeline, type ApplyPipelineDeps } from "../../src/agent/apply-pipeline.ts";
import { Applier } from "../../src/agent/apply.ts";
import { DriftDetector } from "../../src/agent/drift.ts";
import { Outbox } from "../../src/agent/outbox.ts";
import type { StateDir } from "../../src/agent/state.ts";
import type { AgentMessage, ApplyResult } from "../../src/protocol/agent.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { FakeDriver } from "./fake-driver.ts";

export async function applyOnce(
  state: StateDir,
  policyJson: string,
  deps: Pick<ApplyPipelineDeps, "failsafe" | "render">,
): Promise<{ results: ApplyResult[]; kernel: FakeDriver }> {
  const log = memoryLog("error");
  const kernel = new FakeDriver();
  const applier = new Applier(kernel, log);
  const sent: AgentMessage[] = [];
  const outbox = await Outbox.open(state.path("outbox.json"), (m) => (sent.push(m), true), log);
  const pipeline = new ApplyPipeline(
    { state, applier, drift: new DriftDetector(kernel, applier, log), outbox, log, ...deps },
    undefined,
  );
  await pipeline.apply({
    deploymentId: "d1",
    targetId: "t1",
    version: { ruleset: "edge", version: 1, checksum: "c1" },
    policyJson,
    confirmTimeoutSeconds: 5,
    attempt: 0,
  });
  return { results: sent.map((m) => m.applyResult).filter((r) => r !== undefined), kernel };
}
