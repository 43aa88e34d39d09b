// A read whose result configures part of the agent (the applied policy's spaKnock rules,
// its trap sharing), done by the render worker, which may fail (out of memory, an invalid
// applied.json). On failure what is configured stays and the read is tried again after
// `firstMs`, doubling up to `maxMs`, until it succeeds, a newer read supersedes it, or
// `cancel` (shutdown). Retry timers are unref'd: they never hold a stopping agent.

export interface ReadRetry {
  firstMs: number;
  maxMs: number;
}
export const READ_RETRY: ReadRetry = { firstMs: 1_000, maxMs: 60_000 };

export interface RetriedReadHooks<T> {
  /** The value read (`attempt` > 1: after failures). */
  use(value: T, attempt: number): void;
  /** A failed try; the next one comes in `retryInMs`. */
  failed(err: unknown, attempt: number, retryInMs: number): void;
}

export class RetriedRead<T> {
  /** Bumped by each read and by cancel: a retry or a try in flight of an older one stops. */
  private epoch = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly hooks: RetriedReadHooks<T>,
    private readonly retry: ReadRetry = READ_RETRY,
  ) {}

  /** Reads with `fn`, retried on failure; resolves after the first try, true if it succeeded. */
  async read(fn: () => Promise<T>): Promise<boolean> {
    const epoch = this.cancel();
    return this.attempt(fn, epoch, 1, this.retry.firstMs);
  }

  /** Stops the pending retry and makes any try in flight count for nothing. */
  cancel(): number {
    clearTimeout(this.timer);
    this.timer = undefined;
    return ++this.epoch;
  }

  private async attempt(fn: () => Promise<T>, epoch: number, attempt: number, delayMs: number): Promise<boolean> {
    let value: T;
    try {
      value = await fn();
    } catch (e) {
      if (epoch !== this.epoch) return false;
      this.hooks.failed(e, attempt, delayMs);
      this.timer = setTimeout(
        () => void this.attempt(fn, epoch, attempt + 1, Math.min(delayMs * 2, this.retry.maxMs)),
        delayMs,
      );
      this.timer.unref();
      return false;
    }
    if (epoch !== this.epoch) return false;
    this.hooks.use(value, attempt);
    return true;
  }
}
