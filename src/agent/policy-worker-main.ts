// Entry of the agent's render worker thread (policy-worker.ts starts it; built as
// dist/agent/palisade-agent-render.cjs beside the agent bundle and dist/cli/agent-render.js
// beside the CLI's verbs): one request per message, answered with its result or the message
// of what it threw.
import { parentPort } from "node:worker_threads";
import type { ApiEndpoint } from "./desired.ts";
import { policyFacts, renderDesired } from "./render.ts";

export type PolicyRequest =
  | { id: number; op: "render"; policyJson: string; failsafe: ApiEndpoint }
  | { id: number; op: "facts"; policyJson: string };
export type PolicyReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

parentPort?.on("message", (m: PolicyRequest) => {
  let reply: PolicyReply;
  try {
    const result = m.op === "render" ? renderDesired(m.policyJson, m.failsafe) : policyFacts(m.policyJson);
    reply = { id: m.id, ok: true, result };
  } catch (e) {
    reply = { id: m.id, ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  parentPort!.postMessage(reply);
});
