// Start-up recovery of an apply that was waiting for its Confirm when the agent died
// (SIGKILL, power loss, OOM). pending.json was written before the kernel changed:
//   - applied.json names the same target: the Confirm arrived and the commit was recorded;
//     only the cleanup was lost. APPLIED is reported (again: the API ignores a repeat).
//   - otherwise the apply was never confirmed: the snapshot in pending.json is put back
//     before the agent connects (an unconfirmed version may cut the host off from the API
//     for good), stale APPLYING reports are withdrawn, and ROLLED_BACK is reported with
//     code `agent_restarted`.
// The results go through the outbox, so they reach the API right after the Hello.

import { driver as kernel, type DriverOptions } from "../engine/index.ts";
import type { Applier } from "./apply.ts";
import { errorText } from "./errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { Outbox } from "./outbox.ts";
import type { ApplyStatus } from "../protocol/agent.ts";
import type { AppliedState, StateDir } from "./state.ts";

export interface RecoverDeps {
  state: StateDir;
  applier: Applier;
  outbox: Outbox;
  log: Logger;
}

/** What happened to the pending apply: none, committed, rolled_back, rollback_failed, unreadable. */
export type Recovery = "none" | "committed" | "rolled_back" | "rollback_failed" | "unreadable";

export async function recoverPending({ state, applier, outbox, log }: RecoverDeps): Promise<Recovery> {
  let p: Awaited<ReturnType<typeof state.readPending>>;
  try {
    p = await state.readPending();
  } catch (e) {
    // Without the snapshot there is nothing safe to put back; say so loudly and go on.
    log.error({ err: errorText(e) }, "pending.json is unreadable; cannot undo an unconfirmed apply");
    return "unreadable";
  }
  if (!p) return "none";
  const result = (status: ApplyStatus, error: string) =>
    outbox.post({
      applyResult: {
        deploymentId: p.deploymentId,
        targetId: p.targetId,
        version: p.version,
        status,
        error,
        attempt: p.attempt ?? 0,
      },
    });
  const applied = await state.readApplied().catch(() => undefined);
  if (applied?.targetId === p.targetId && applied.deploymentId === p.deploymentId) {
    log.info(
      { targetId: p.targetId, version: p.version.version },
      "the pending apply was committed before the restart",
    );
    await result("APPLY_STATUS_APPLIED", "");
    await state.clearPending();
    return "committed";
  }
  log.warn(
    { targetId: p.targetId, version: p.version.version, since: p.startedAt },
    "unconfirmed apply found at start; restoring the previous ruleset before connecting",
  );
  await outbox.withdrawApplying(p.targetId);
  let out: Recovery = "rolled_back";
  try {
    await applier.restoreSnapshot(p.snapshot);
    await result(
      "APPLY_STATUS_ROLLED_BACK",
      `agent_restarted: the agent restarted while waiting for the confirmation (applied ${p.startedAt}); previous ruleset restored`,
    );
  } catch (e) {
    log.error({ err: errorText(e) }, "restoring the previous ruleset after a restart failed");
    await result(
      "APPLY_STATUS_FAILED",
      `rollback_failed: the agent restarted while waiting for the confirmation and could not restore the previous ruleset: ${errorText(e)}`,
    );
    out = "rollback_failed";
  }
  // Kept when the restore failed: the next start tries again.
  if (out === "rolled_back") await state.clearPending();
  return out;
}

/**
 * After a reboot the kernel holds none of Palisade's tables, and until the agent reaches
 * the API (which may be down, or reachable only through this very firewall) the host
 * would run with no rules at all. The last confirmed version (applied.json) goes back in
 * before the agent connects. Only when no Palisade table exists: anything else is drift,
 * which the drift check reports and restores like any other.
 */
export async function restoreAfterReboot(
  { applier, driver, log }: { applier: Applier; driver: DriverOptions; log: Logger },
  applied: AppliedState | undefined,
): Promise<boolean> {
  if (!applied) return false;
  if ((await kernel.listPalisadeTables(driver)).length > 0) return false;
  log.warn(
    {
      ruleset: applied.ruleset,
      version: applied.version,
    },
    "the kernel holds none of Palisade's tables (a reboot?); applying the last confirmed version before connecting",
  );
  try {
    await applier.applyText(applied.text);
  } catch (e) {
    log.error(
      { err: errorText(e) },
      "applying the last confirmed version at start failed; the host runs without Palisade's rules until the API sends them",
    );
    return false;
  }
  return true;
}
