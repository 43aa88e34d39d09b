// The agent's policy work in a worker thread (policy-worker-main.ts runs render.ts there):
// validating and compiling a policy loads zod's policy schema and the nft compiler, ~6 MB
// of heap the agent would otherwise keep for its whole life (bench/footprint.ts). The
// worker starts with the first request; the facts of a version, asked for just before its
// render, reuse it. It is terminated as soon as a render is answered (else its heap, full
// of that render's garbage, would stay beside the kernel apply that follows: +15 MB at the
// peak of a 10k-rule apply) and otherwise once idle for `idleMs`, so a resting agent holds
// no second isolate.
import { createHash } from "node:crypto";
import { Worker } from "node:worker_threads";
import type { Logger } from "../runtime/log.ts";
import { workerScript } from "../runtime/worker-script.ts";
import type { ApiEndpoint } from "./desired.ts";
import type { PolicyReply, PolicyRequest } from "./policy-worker-main.ts";
import { NO_FACTS, type PolicyFacts, type Rendered } from "./render.ts";

/** The built worker beside the running bundle (scripts/build.mjs defines it; unset from the sources). */
declare const __AGENT_RENDER_WORKER__: string | undefined;

/** How long the worker is kept after answering a policy's facts (its render usually follows). */
export const POLICY_WORKER_IDLE_MS = 5_000;
/**
 * The worker's heap cap (V8 old generation, MB): a policy needing more fails its render
 * ("out of heap", reported FAILED) and the agent carries on; without a cap a runaway render
 * would take the agent's process down. Measured (node 20, built worker): a 65,536-address set
 * plus 10,000 rules renders at 24 MB (22 fails), 32 MB from the sources (tsx); a policy at
 * the API's 5 MB body limit (340,000 addresses + 10,000 rules) at 96 MB (64 fails).
 */
export const POLICY_WORKER_HEAP_MB = 128;
/** Facts remembered by the policy JSON's hash (the applied version is asked for around every apply). */
const FACTS_KEPT = 4;

type Request = PolicyRequest extends infer R ? (R extends unknown ? Omit<R, "id"> : never) : never;

export class PolicyWorker {
  private worker: Worker | undefined;
  private readonly waiting = new Map<
    number,
    { w: Worker; keepMs: number; resolve(v: unknown): void; reject(e: Error): void }
  >();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly facts = new Map<string, PolicyFacts>();
  /** Workers started so far (tests). */
  started = 0;

  constructor(
    private readonly log?: Logger,
    private readonly idleMs = POLICY_WORKER_IDLE_MS,
    private readonly heapMb = POLICY_WORKER_HEAP_MB,
  ) {}

  /** A worker is running (or starting). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** The policy JSON validated and compiled for nftables with `failsafe` (render.ts). */
  render(policyJson: string, failsafe: ApiEndpoint): Promise<Rendered> {
    return this.call({ op: "render", policyJson, failsafe }, 0) as Promise<Rendered>;
  }

  /**
   * The facts of a policy (render.ts); none for none. One that does not validate is logged
   * (once per policy, with `version` when the caller knows it): it has no trap sharing.
   */
  async factsOf(policyJson: string | undefined, version?: { ruleset: string; version: number }): Promise<PolicyFacts> {
    if (!policyJson) return NO_FACTS;
    const key = createHash("sha256").update(policyJson).digest("base64");
    const known = this.facts.get(key);
    if (known) return known;
    const f = (await this.call({ op: "facts", policyJson }, this.idleMs)) as PolicyFacts;
    if (f.invalid)
      this.log?.warn(
        {
          ...(version && { ruleset: version.ruleset, version: version.version }),
          codes: f.invalid.codes,
          error: f.invalid.error,
        },
        "the policy does not validate for nftables: no port-scan trap sharing from it",
      );
    this.facts.set(key, f);
    if (this.facts.size > FACTS_KEPT) this.facts.delete(this.facts.keys().next().value!);
    return f;
  }

  /** Stops the worker now; requests still waiting fail. A later request starts a new one. */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  /** `keepMs`: how long the worker stays for the next request once this one is answered. */
  private call(req: Request, keepMs: number): Promise<unknown> {
    clearTimeout(this.idleTimer);
    const w = this.worker ?? this.spawn();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { w, keepMs, resolve, reject });
      w.postMessage({ ...req, id } satisfies PolicyRequest);
    });
  }

  private spawn(): Worker {
    const { script, options } = workerScript(import.meta.url, "./policy-worker-main.ts", () => {
      if (typeof __AGENT_RENDER_WORKER__ !== "string") throw new Error("the agent's render worker is not built");
      return new URL(__AGENT_RENDER_WORKER__, import.meta.url);
    });
    const w = new Worker(script, { ...options, execArgv: [], resourceLimits: { maxOldGenerationSizeMb: this.heapMb } });
    this.worker = w;
    this.started++;
    // Waiting for the worker's answer must not keep the process alive (shutdown).
    w.unref();
    w.on("message", (m: PolicyReply) => {
      const p = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.ok) p?.resolve(m.result);
      else p?.reject(new Error(`render worker: ${m.error}`));
      if (this.waiting.size === 0 && this.worker === w) {
        if (!p || p.keepMs === 0) void this.close();
        else {
          this.idleTimer = setTimeout(() => void this.close(), p.keepMs);
          this.idleTimer.unref();
        }
      }
    });
    const gone = (why: string) => {
      if (this.worker === w) this.worker = undefined;
      const lost = [...this.waiting].filter(([, p]) => p.w === w);
      if (lost.length === 0) return;
      this.log?.warn({ reason: why }, "render worker stopped with requests waiting");
      for (const [id, p] of lost) {
        this.waiting.delete(id);
        p.reject(new Error(`render worker stopped: ${why}`));
      }
    };
    w.on("error", (e: Error & { code?: string }) =>
      gone(
        e.code === "ERR_WORKER_OUT_OF_MEMORY"
          ? `out of heap (the policy needs more than the render worker's ${this.heapMb} MB): ${e.message}`
          : e.message,
      ),
    );
    w.on("exit", (code) => gone(`exit ${code}`));
    return w;
  }
}
