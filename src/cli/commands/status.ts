// `palisade status [DEPLOYMENT]`: recent deployments, or one deployment with a progress
// line (per-status counts) printed whenever it changes while the rollout runs. Polling
// is bounded by --timeout. Exit code: 0 succeeded, 1 failed/halted/rolled back, 7 still
// running when the watch gave up.
import type { Command } from "commander";
import { EXIT } from "../errors.ts";
import { data, formatOf, out, withOutput } from "../output.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";
import { relative } from "../time.ts";

interface Counts {
  total: number;
  pending: number;
  applying: number;
  applied: number;
  failed: number;
  rolled_back: number;
}
type VersionRef = { ruleset: string; version: number };
export interface Summary {
  id: string;
  ruleset: string;
  version: number;
  status: string;
  counts: Counts;
  createdAt: string;
  createdBy: string;
  rollbackOf: string | null;
  finishedAt: string | null;
}
export interface Detail extends Summary {
  targets: {
    hostId: string;
    host: string;
    batch: number;
    status: string;
    error: string | null;
    version: VersionRef;
    previousVersion: VersionRef | null;
    attempts: number;
    finishedAt: string | null;
  }[];
}

const FINAL = ["succeeded", "failed", "halted", "rolled_back"];

export function progressLine(d: Summary): string {
  const c = d.counts;
  const done = c.applied + c.failed + c.rolled_back;
  return `${d.id} ${d.ruleset}@${d.version} ${d.status}: ${done}/${c.total} done (applied ${c.applied}, applying ${c.applying}, pending ${c.pending}, failed ${c.failed}, rolled_back ${c.rolled_back})`;
}

const OPEN_TARGET = ["pending", "applying"];
/** Hosts looked up to say why their target waits; beyond this many, only the batch is said. */
const MAX_HOST_LOOKUPS = 25;

/**
 * Why each unfinished target of a running deployment waits: its host is offline, never
 * connected or disabled (the agent gets nothing until it connects), or an earlier batch
 * (the canary first) has not finished.
 */
export async function waitReasons(rest: Rest, d: Detail, now = Date.now()): Promise<Map<string, string>> {
  const why = new Map<string, string>();
  if (FINAL.includes(d.status)) return why;
  const open = d.targets.filter((t) => OPEN_TARGET.includes(t.status));
  const firstOpenBatch = Math.min(...open.map((t) => t.batch));
  for (const [i, t] of open.entries()) {
    if (i < MAX_HOST_LOOKUPS) {
      const h = await rest
        .get<{ connection: string; disabled?: boolean; lastSeenAt: string | null }>(
          `/v1/hosts/${encodeURIComponent(t.hostId)}`,
        )
        .catch(() => undefined);
      if (h?.disabled) {
        why.set(t.hostId, "host disabled");
        continue;
      }
      if (h?.connection === "never_connected") {
        why.set(t.hostId, "host never connected");
        continue;
      }
      if (h?.connection === "disconnected") {
        why.set(t.hostId, `host offline${h.lastSeenAt ? ` since ${relative(h.lastSeenAt, now)}` : ""}`);
        continue;
      }
    }
    if (t.status === "pending" && t.batch > firstOpenBatch)
      why.set(t.hostId, `waits for batch ${firstOpenBatch}${firstOpenBatch === 0 ? " (canary)" : ""}`);
  }
  return why;
}

export async function watchDeployment(
  rest: Rest,
  id: string,
  o: { timeoutS: number; intervalMs?: number; out?: (l: string) => void },
): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const deadline = Date.now() + o.timeoutS * 1000;
  let last = "";
  let d: Detail;
  for (;;) {
    d = await rest.request<Detail>("GET", `/v1/deployments/${encodeURIComponent(id)}`);
    const line = progressLine(d);
    if (line !== last) out(line);
    last = line;
    if (FINAL.includes(d.status) || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 1000));
  }
  const why = await waitReasons(rest, d);
  for (const t of d.targets)
    out(
      `  ${t.host.padEnd(24)} batch ${t.batch}  ${t.status}${t.error ? `  ${t.error}` : ""}${why.get(t.hostId) ? `  (${why.get(t.hostId)})` : ""}`,
    );
  if (d.status === "succeeded") return EXIT.ok;
  if (FINAL.includes(d.status)) return EXIT.generic;
  out(`still ${d.status} after ${o.timeoutS}s; run palisade status ${id} again to keep watching`);
  return EXIT.stillRunning;
}

export function register(program: Command): void {
  withOutput(
    withRestOptions(
      program
        .command("status")
        .description("recent deployments, or one deployment's progress until its rollout ends")
        .argument("[deployment]", "deployment id")
        .option("--no-watch", "print the current state once")
        .option("--timeout <seconds>", "stop watching after this long", "600"),
    ),
  ).action(
    async (
      id: string | undefined,
      o: RestOptions & { watch: boolean; timeout: string; output?: string; json?: boolean },
    ) => {
      const rest = new Rest(o);
      const f = formatOf(o);
      if (!id) {
        const page = await rest.request<{ items: Summary[] }>("GET", "/v1/deployments?limit=20");
        if (f === "json" || f === "yaml") return out(data(page.items, f));
        for (const d of page.items) out(`${d.createdAt} ${progressLine(d)}\n`);
        return;
      }
      if (f === "json" || f === "yaml")
        return out(data(await rest.request<Detail>("GET", `/v1/deployments/${encodeURIComponent(id)}`), f));
      process.exitCode = await watchDeployment(rest, id, { timeoutS: o.watch ? Number(o.timeout) : 0 });
    },
  );
}
