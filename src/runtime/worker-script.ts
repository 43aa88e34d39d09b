// What a Worker runs for an entry module, in the two ways Palisade's code runs: built (the
// entry is its own bundle, at `built`) and from the TypeScript sources (tests, a checkout
// without dist/), where the worker registers tsx (a dev dependency, present there) itself,
// since a parent that registered it at run time passes nothing in execArgv.
import type { WorkerOptions } from "node:worker_threads";

export interface WorkerScript {
  script: string | URL;
  options: Pick<WorkerOptions, "eval">;
}

/** `callerUrl` = the caller's import.meta.url; `sourceEntry` = the entry's .ts, relative to it. */
export function workerScript(callerUrl: string, sourceEntry: string, built: () => URL): WorkerScript {
  if (!callerUrl.endsWith(".ts")) return { script: built(), options: { eval: false } };
  const tsx = import.meta.resolve("tsx/esm/api");
  const entry = new URL(sourceEntry, callerUrl).href;
  return {
    script: `import(${JSON.stringify(tsx)}).then((m) => m.register()).then(() => import(${JSON.stringify(entry)}));`,
    options: { eval: true },
  };
}
