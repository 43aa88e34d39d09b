// Runs the CPU-heavy work of requests (YAML parsing, validation and import, diff, render)
// in worker threads, so the event loop that answers /healthz, every other request and the
// agents' gRPC streams never waits for it. The queue is bounded in length and in waiting
// time: a request that finds it full, or waits too long in it, is refused with 503 and
// Retry-After instead of piling up; a task that runs past its time limit is stopped (its
// worker is replaced) with 413.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { installRoot } from "../runtime/install-root.ts";
import { workerScript } from "../runtime/worker-script.ts";
import { ApiError } from "./errors.ts";
import type { CpuTaskName, CpuTasks } from "./cpu-tasks.ts";
import type { TaskReply, TaskRequest } from "./cpu-worker.ts";

export interface CpuPoolOptions {
  /** Worker threads (default 1: the event loop keeps the other core). */
  workers?: number;
  /** Tasks that may wait for a worker; one more is refused with 503 (default 64: a burst of pushes fits). */
  queueLimit?: number;
  /** A task that waited this long for a worker is refused with 503 (default 30 s). */
  queueTimeoutMs?: number;
  /** A task running longer is stopped and answered 413 (default 30 s). */
  taskTimeoutMs?: number;
  /** Heap limit of a worker; a task that needs more fails alone, not the server (default 1 GiB). */
  maxHeapMb?: number;
}

export const CPU_POOL_DEFAULTS = {
  workers: 1,
  queueLimit: 64,
  queueTimeoutMs: 30_000,
  taskTimeoutMs: 30_000,
  maxHeapMb: 1024,
} as const;
/** What a refused request is told to wait before retrying. */
export const BUSY_RETRY_AFTER_SECONDS = 2;

type Arg<K extends CpuTaskName> = Parameters<CpuTasks[K]>[0];
type Result<K extends CpuTaskName> = ReturnType<CpuTasks[K]>;

interface Job {
  /** Refuses the job if it is still queued when it fires. */
  queuedTimer?: NodeJS.Timeout;
  task: CpuTaskName;
  arg: unknown;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker;
  /** The worker has loaded its code; a task's time limit runs from then, not from the spawn. */
  ready: boolean;
  job?: Job & { id: number; timer?: NodeJS.Timeout };
}

/**
 * The worker's code. Built (`npm run build`), this module is inside a bundle and the
 * worker is its own bundle, dist/cli/cpu-worker.js; from the sources it loads TypeScript.
 */
const workerCode = () =>
  workerScript(import.meta.url, "./cpu-worker.ts", () =>
    pathToFileURL(join(installRoot(import.meta.url), "dist/cli/cpu-worker.js")),
  );

const busy = (message: string) =>
  new ApiError(503, "busy", message, [], { "retry-after": String(BUSY_RETRY_AFTER_SECONDS) });

export class CpuPool {
  private readonly opts: Required<CpuPoolOptions>;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(opts: CpuPoolOptions = {}) {
    this.opts = { ...CPU_POOL_DEFAULTS, ...opts };
  }

  /** Tasks waiting for a worker (not counting those running). */
  get queued(): number {
    return this.queue.length;
  }

  /** Tasks running in a worker now. */
  get running(): number {
    return this.slots.filter((s) => s.job).length;
  }

  run<K extends CpuTaskName>(task: K, arg: Arg<K>): Promise<Result<K>> {
    if (this.closed) return Promise.reject(busy("the server is shutting down"));
    const idle = this.idleSlot();
    if (!idle && this.queue.length >= this.opts.queueLimit) {
      return Promise.reject(
        busy(
          `the server is busy with ${this.queue.length} queued validations, diffs and renders; retry in ${BUSY_RETRY_AFTER_SECONDS} s`,
        ),
      );
    }
    return new Promise<Result<K>>((resolve, reject) => {
      const job: Job = { task, arg, resolve: resolve as (v: unknown) => void, reject };
      if (idle) return this.start(idle, job);
      this.queue.push(job);
      job.queuedTimer = setTimeout(() => {
        const i = this.queue.indexOf(job);
        if (i < 0) return;
        this.queue.splice(i, 1);
        job.reject(
          busy(
            `the request waited ${this.opts.queueTimeoutMs / 1000} s for the server's validation worker; retry in ${BUSY_RETRY_AFTER_SECONDS} s`,
          ),
        );
      }, this.opts.queueTimeoutMs);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) {
      clearTimeout(job.queuedTimer);
      job.reject(busy("the server is shutting down"));
    }
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }

  /** An idle worker, started on demand up to the pool size. */
  private idleSlot(): Slot | undefined {
    const idle = this.slots.find((s) => !s.job);
    if (idle || this.slots.length >= this.opts.workers) return idle;
    const slot: Slot = { worker: this.spawn(), ready: false };
    this.slots.push(slot);
    return slot;
  }

  private spawn(): Worker {
    const { script, options } = workerCode();
    const worker = new Worker(script, {
      ...options,
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb },
    });
    // An idle worker must not keep the process alive.
    worker.unref();
    worker.on("message", (m: TaskReply | { ready: true }) => {
      if ("id" in m) return this.finish(worker, m);
      const slot = this.slots.find((s) => s.worker === worker);
      if (!slot) return;
      slot.ready = true;
      if (slot.job) this.startTimer(slot);
    });
    worker.on("error", (err: Error & { code?: string }) => {
      const tooBig = err.code === "ERR_WORKER_OUT_OF_MEMORY";
      this.fail(
        worker,
        tooBig
          ? new ApiError(
              413,
              "payload_too_large",
              `the request needed more than ${this.opts.maxHeapMb} MiB of memory and was stopped; send a smaller document`,
            )
          : new Error(`the CPU worker failed: ${err.message}`),
      );
    });
    worker.on("exit", (code) => this.fail(worker, new Error(`the CPU worker exited with code ${code}`)));
    return worker;
  }

  private start(slot: Slot, job: Job): void {
    const id = this.nextId++;
    slot.job = { ...job, id };
    slot.worker.postMessage({ id, task: job.task, arg: job.arg } satisfies TaskRequest);
    if (slot.ready) this.startTimer(slot);
  }

  private startTimer(slot: Slot): void {
    slot.job!.timer = setTimeout(() => {
      const limit = this.opts.taskTimeoutMs / 1000;
      this.fail(
        slot.worker,
        new ApiError(
          413,
          "payload_too_large",
          `the request needed more than ${limit} s of work and was stopped; send a smaller document`,
        ),
      );
    }, this.opts.taskTimeoutMs);
  }

  private finish(worker: Worker, reply: TaskReply): void {
    const slot = this.slots.find((s) => s.worker === worker);
    const job = slot?.job;
    if (!slot || !job || job.id !== reply.id) return;
    clearTimeout(job.timer);
    slot.job = undefined;
    if (reply.ok) job.resolve(reply.result);
    else job.reject(new Error(`CPU task ${job.task} failed: ${reply.error}`));
    this.next(slot);
  }

  /** The worker is gone or stopped: fail its task, replace it, carry on with the queue. */
  private fail(worker: Worker, err: Error): void {
    const i = this.slots.findIndex((s) => s.worker === worker);
    if (i < 0) return;
    const [slot] = this.slots.splice(i, 1);
    if (slot!.job) {
      clearTimeout(slot!.job.timer);
      slot!.job.reject(err);
    }
    void worker.terminate();
    if (this.closed) return;
    const next = this.idleSlot();
    if (next) this.next(next);
  }

  private next(slot: Slot): void {
    const job = this.queue.shift();
    if (!job) return;
    clearTimeout(job.queuedTimer);
    this.start(slot, job);
  }
}
