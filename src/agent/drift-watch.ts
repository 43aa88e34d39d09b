// Drift checks on an interval and on the API's CheckDrift; each result goes to the outbox
// as a DriftReport (a check that fails is reported as such, never dropped).
import type { DriftDetector } from "./drift.ts";
import { errorText } from "./errors.ts";
import type { Outbox } from "./outbox.ts";

export class DriftWatch {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly drift: DriftDetector,
    private readonly outbox: Outbox,
    /** --drift-restore: put the desired rules back when they drifted. */
    private readonly restore: boolean,
  ) {}

  async check(): Promise<void> {
    const r = await this.drift
      .check({ restore: this.restore })
      .catch((e) => ({ drifted: false, details: `drift check failed: ${errorText(e)}`, restored: false }));
    await this.outbox.post({ drift: r });
  }

  /** Every `intervalS` seconds; 0 = only on CheckDrift. */
  start(intervalS: number): void {
    if (intervalS > 0) this.timer = setInterval(() => void this.check(), intervalS * 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
