// Entry of the CPU pool's worker thread (bundled as dist/cli/cpu-worker.js): runs one task
// per message, answers with its result or the message of what it threw, and says when it
// is ready (a task's time limit runs from then).
import { parentPort } from "node:worker_threads";
import { cpuTasks, type CpuTaskName } from "./cpu-tasks.ts";

export interface TaskRequest {
  id: number;
  task: CpuTaskName;
  arg: unknown;
}
export type TaskReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

parentPort?.on("message", (m: TaskRequest) => {
  let reply: TaskReply;
  try {
    reply = { id: m.id, ok: true, result: (cpuTasks[m.task] as (arg: unknown) => unknown)(m.arg) };
  } catch (e) {
    reply = { id: m.id, ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  parentPort!.postMessage(reply);
});
parentPort?.postMessage({ ready: true });
