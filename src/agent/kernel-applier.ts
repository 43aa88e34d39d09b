// The agent's applier on the kernel, with the hooks that keep telemetry exact across
// changes: the collector's final reading before every change, its base moved after a
// change that put values back (a rollback), then the condition and country sets' values
// and the log readers' groups.
import type { Driver } from "../engine/index.ts";
import type { Logger } from "../runtime/log.ts";
import { Applier } from "./apply.ts";
import { errorText } from "./errors.ts";
import type { Collector } from "./telemetry/collector.ts";
import type { LogGroups } from "./telemetry/log-groups.ts";

export interface KernelApplierDeps {
  collector: Pick<Collector, "collect" | "rebase" | "rebaseNew">;
  logGroups: Pick<LogGroups, "syncFromKernel">;
  /** The condition and country sets a change brought get their values. */
  resync: () => Promise<void>;
}

export function kernelApplier(driver: Driver, after: KernelApplierDeps, log: Logger): Applier {
  const { collector, logGroups } = after;
  const applier = new Applier(driver, log);
  applier.hooks = {
    beforeChange: async () => {
      await collector
        .collect()
        .catch((e) => log.warn({ err: errorText(e) }, "final telemetry read before a kernel change failed"));
    },
    afterChange: async (how) => {
      if (how === "rewound") await collector.rebase();
      else if (how === "restored") await collector.rebaseNew();
      await after.resync();
      // Not awaited: an apply never waits for tcpdump; logGroups.idle() does.
      void logGroups.syncFromKernel();
    },
  };
  return applier;
}
