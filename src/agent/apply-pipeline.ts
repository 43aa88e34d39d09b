// DesiredState -> render (a worker thread) -> pending.json -> Applier.safeApply -> APPLYING -> the API's
// Confirm -> drift baseline + applied.json -> APPLIED (or rollback, ROLLED_BACK/FAILED).
// Holds what Hello reports (the version waiting for its Confirm, else the last confirmed
// one) and the Confirms the stream delivers to the apply waiting for them.
import type { AppliedVersion, DesiredState } from "../protocol/agent.ts";
import type { Logger } from "../runtime/log.ts";
import type { Applier } from "./apply.ts";
import type { ApiEndpoint } from "./desired.ts";
import type { DriftDetector } from "./drift.ts";
import { errorText } from "./errors.ts";
import type { Outbox } from "./outbox.ts";
import type { Rendered } from "./render.ts";
import type { StateDir } from "./state.ts";

type Status = "APPLY_STATUS_APPLYING" | "APPLY_STATUS_APPLIED" | "APPLY_STATUS_FAILED" | "APPLY_STATUS_ROLLED_BACK";

const NONE: AppliedVersion = { ruleset: "", version: 0, checksum: "" };

export interface ApplyPipelineDeps {
  state: StateDir;
  applier: Applier;
  drift: DriftDetector;
  outbox: Outbox;
  log: Logger;
  /** The failsafe endpoint, resolved again for every render. */
  failsafe: () => Promise<ApiEndpoint>;
  /** Policy JSON -> nft text and tables (render.ts; the agent runs it in its PolicyWorker). */
  render: (policyJson: string, failsafe: ApiEndpoint) => Promise<Rendered>;
  /** A version was committed (its policy JSON): the parts that follow the confirmed policy. */
  onConfirmed?: (policyJson: string, version: { ruleset: string; version: number }) => void;
}

export class ApplyPipeline {
  private pendingVersion: AppliedVersion | undefined;
  private readonly confirms = new Map<string, (ok: boolean) => void>();
  // A Confirm that overtakes its apply's wait: only for a target whose version the kernel
  // holds right now (a stale Confirm must never confirm a later apply of the same target).
  private readonly early = new Set<string>();
  private readonly applying = new Set<string>();

  constructor(
    private readonly d: ApplyPipelineDeps,
    /** The last confirmed version (applied.json), if any. */
    private applied: AppliedVersion | undefined,
  ) {}

  /** What Hello reports: the version waiting for its Confirm, else the last confirmed one. */
  get helloVersion(): AppliedVersion {
    return this.pendingVersion ?? this.applied ?? NONE;
  }

  /** The API's Confirm: to the apply waiting for it, or kept for one not waiting yet. */
  confirm(m: { deploymentId: string; targetId: string }): void {
    const k = `${m.deploymentId}/${m.targetId}`;
    const fn = this.confirms.get(k);
    if (fn) fn(true);
    else if (this.applying.has(k)) this.early.add(k);
  }

  private stopping = false;

  /** Shutting down: every apply waiting for its Confirm, now or later, is not confirmed (rolls back). */
  refuseWaiting(): void {
    this.stopping = true;
    for (const fn of [...this.confirms.values()]) fn(false);
  }

  /** Resolves true when the kernel holds `m`'s version committed, false when it kept the one before. */
  async apply(m: DesiredState): Promise<boolean> {
    const { state, applier, drift, outbox, log } = this.d;
    const version = m.version ?? NONE;
    const report = (status: Status, error = "") =>
      outbox.post({
        applyResult: { deploymentId: m.deploymentId, targetId: m.targetId, version, status, error, attempt: m.attempt },
      });
    let rendered: Rendered;
    try {
      rendered = await this.d.render(m.policyJson, await this.d.failsafe());
    } catch (e) {
      // The render worker could not start or stopped: reported, never a deployment left waiting.
      await report("APPLY_STATUS_FAILED", `render_failed: ${errorText(e)}`);
      return false;
    }
    if (!rendered.ok) {
      await report("APPLY_STATUS_FAILED", `${rendered.code}: ${rendered.error}`);
      return false;
    }
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
          this.applying.add(key);
          this.pendingVersion = version;
          void report("APPLY_STATUS_APPLYING");
        },
        confirmed: (ms) => this.waitConfirm(key, ms),
        // Inside the applier's lock: a drift check queued meanwhile sees this version as desired.
        // applied.json naming this target is the commit point; anything failing before it
        // (disk full) makes the applier roll back.
        onConfirmed: async () => {
          const before = drift.current;
          await drift.setDesired(rendered.text, rendered.tables);
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
          this.applied = version;
          this.pendingVersion = undefined;
          this.d.onConfirmed?.(m.policyJson, version);
          await report("APPLY_STATUS_APPLIED");
          reported = true;
          await state.clearPending().catch((e) => log.warn({ err: errorText(e) }, "cannot remove pending.json"));
        },
        onNotApplied: async (o) => {
          this.pendingVersion = undefined;
          await outbox.withdrawApplying(m.targetId);
          await report(
            o.status === "rolled_back" ? "APPLY_STATUS_ROLLED_BACK" : "APPLY_STATUS_FAILED",
            `${o.code ?? "failed"}: ${o.error ?? ""}`,
          );
          reported = true;
          // A rollback that failed leaves the way back on disk: the next start tries again
          // (recover.ts), rather than leaving the unconfirmed version in the kernel for good.
          if (o.code !== "rollback_failed") await state.clearPending();
        },
      })
      .finally(() => {
        this.applying.delete(key);
        this.early.delete(key);
      });
    if (out.status === "applied") return true;
    if (!reported)
      await report(
        out.status === "rolled_back" ? "APPLY_STATUS_ROLLED_BACK" : "APPLY_STATUS_FAILED",
        `${out.code ?? "failed"}: ${out.error ?? ""}`,
      );
    return false;
  }

  /** true on the Confirm for `key` (or one that came early), false after `ms` or on shutdown. */
  private waitConfirm(key: string, ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      if (this.early.delete(key)) return resolve(true);
      if (this.stopping) return resolve(false);
      const t = setTimeout(() => {
        this.confirms.delete(key);
        resolve(false);
      }, ms);
      this.confirms.set(key, (ok) => {
        clearTimeout(t);
        this.confirms.delete(key);
        resolve(ok);
      });
    });
  }
}
