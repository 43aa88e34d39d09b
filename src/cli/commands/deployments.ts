// `palisade deployments`: rollouts of a ruleset version to hosts.
//   ls [--status S] [--limit N]   newest first, with per-status host counts
//   show ID                       one deployment and every target host: batch, status, error
//   watch ID                      progress until the rollout ends (as `deploy --wait`)
//   rollback ID                   a new deployment that puts each target's previous version back
import type { Command } from "commander";
import { parseCount } from "../args.ts";
import { EXIT } from "../errors.ts";
import { formatOf, out, printList, printOne, table, when, withOutput, type Column } from "../output.ts";
import { idempotentPost, Rest, seg, withRestOptions, type RestOptions } from "../rest.ts";
import { relative } from "../time.ts";
import { waitReasons, watchDeployment, type Detail, type Summary } from "./status.ts";

const COLUMNS: Column<Summary>[] = [
  { header: "ID", value: (d) => d.id },
  when("CREATED", (d) => d.createdAt),
  { header: "VERSION", value: (d) => `${d.ruleset}@${d.version}` },
  { header: "STATUS", value: (d) => d.status },
  { header: "APPLIED", value: (d) => `${d.counts.applied}/${d.counts.total}` },
  { header: "FAILED", value: (d) => d.counts.failed + d.counts.rolled_back },
  { header: "BY", value: (d) => d.createdBy },
  { header: "ROLLBACK OF", value: (d) => d.rollbackOf, wide: true },
  when("FINISHED", (d) => d.finishedAt, true),
];

type Target = Detail["targets"][number] & { waiting?: string };
const TARGETS: Column<Target>[] = [
  { header: "HOST", value: (t) => t.host },
  { header: "BATCH", value: (t) => t.batch },
  { header: "STATUS", value: (t) => t.status },
  { header: "VERSION", value: (t) => `${t.version.ruleset}@${t.version.version}` },
  {
    header: "PREVIOUS",
    value: (t) => (t.previousVersion ? `${t.previousVersion.ruleset}@${t.previousVersion.version}` : "-"),
    wide: true,
  },
  { header: "ATTEMPTS", value: (t) => t.attempts, wide: true },
  when("FINISHED", (t) => t.finishedAt, true),
  { header: "ERROR", value: (t) => t.error ?? (t.waiting ? `waiting: ${t.waiting}` : null) },
];

export function deploymentLines(d: Detail, wide: boolean, waiting = new Map<string, string>()): string[] {
  const c = d.counts;
  return [
    `deployment ${d.id}: ${d.ruleset}@${d.version} ${d.status}`,
    `  created:  ${relative(d.createdAt)} by ${d.createdBy}${d.finishedAt ? `, finished ${relative(d.finishedAt)}` : ""}`,
    `  hosts:    ${c.total} (applied ${c.applied}, applying ${c.applying}, pending ${c.pending}, failed ${c.failed}, rolled_back ${c.rolled_back})`,
    ...(d.rollbackOf ? [`  rollback of ${d.rollbackOf}`] : []),
    "",
    table(
      d.targets.map((t) => ({ ...t, waiting: waiting.get(t.hostId) })),
      TARGETS,
      wide,
    ).trimEnd(),
  ];
}

type Opts = RestOptions & { output?: string; json?: boolean };

export function register(program: Command): void {
  const deployments = program
    .command("deployments")
    .description("rollouts: ls, show ID (with its hosts), watch ID, rollback ID");
  withOutput(
    withRestOptions(
      deployments
        .command("ls")
        .alias("list")
        .description("deployments, newest first")
        .option("--status <status>", "only pending, running, succeeded, failed, halted or rolled_back")
        .option("--limit <n>", "at most this many", "50"),
    ),
  ).action(async (o: Opts & { status?: string; limit: string }) => {
    printList(
      await new Rest(o).all<Summary>("/v1/deployments", { status: o.status }, parseCount(o.limit, "--limit")),
      COLUMNS,
      formatOf(o),
    );
  });
  withOutput(
    withRestOptions(
      deployments.command("show").description("one deployment and its target hosts").argument("<id>", "deployment id"),
    ),
  ).action(async (id: string, o: Opts) => {
    const rest = new Rest(o);
    const d = await rest.get<Detail>(`/v1/deployments/${seg(id)}`);
    const f = formatOf(o);
    const waiting = f === "table" || f === "wide" ? await waitReasons(rest, d) : new Map<string, string>();
    printOne(d, f, (x, wide) => deploymentLines(x, wide, waiting));
  });
  withRestOptions(
    deployments
      .command("watch")
      .description("progress of a deployment until its rollout ends (exit 0 succeeded, 1 failed, 7 still running)")
      .argument("<id>", "deployment id")
      .option("--timeout <seconds>", "stop watching after this long", "600"),
  ).action(async (id: string, o: RestOptions & { timeout: string }) => {
    process.exitCode = await watchDeployment(new Rest(o), id, { timeoutS: Number(o.timeout) });
  });
  withRestOptions(
    deployments
      .command("rollback")
      .description("put each target's previous version back (a new deployment)")
      .argument("<id>", "deployment id")
      .option("--wait", "show progress until the rollback ends")
      .option("--timeout <seconds>", "with --wait: give up watching after this long", "600"),
  ).action(async (id: string, o: RestOptions & { wait?: boolean; timeout: string }) => {
    const rest = new Rest(o);
    const r = await idempotentPost<{
      id: string;
      targets: number;
      skipped: string[];
      skippedReasons?: { host: string; code?: string; reason: string }[];
    }>(rest, `/v1/deployments/${seg(id)}/rollback`);
    // An answer replayed from before skippedReasons existed: those hosts ran no earlier version.
    const reasons =
      r.skippedReasons ??
      r.skipped.map((host) => ({ host, code: "no_previous_version", reason: "no earlier version" }));
    // A host that ran nothing before has nothing to go back to: skipping it is the rollback
    // done. Any other skip (a kernel without a feature) leaves the host on the version being
    // undone, so a script (`rollback --wait && ...`) must not take the rollback as done.
    const none = reasons.filter((s) => s.code === undefined || s.code === "no_previous_version");
    const notDone = reasons.filter((s) => !none.includes(s));
    out(
      `deployment ${r.id}: rollback of ${id} to ${r.targets} host(s)${r.skipped.length ? `; skipped: ${r.skipped.join(", ")}` : ""}\n` +
        none.map((s) => `  skipped ${s.host}: ${s.reason}\n`).join(""),
    );
    const left = [...new Set(notDone.map((s) => s.host))];
    if (left.length)
      process.stderr.write(
        `warning: not rolled back on ${left.length} host(s), which still run the version being undone: ${left.join(", ")}\n` +
          notDone.map((s) => `  skipped ${s.host}: ${s.reason}\n`).join(""),
      );
    const watched = o.wait ? await watchDeployment(rest, r.id, { timeoutS: Number(o.timeout) }) : EXIT.ok;
    // The rollout's own failure (or a watch that gave up) says more than the left-out hosts.
    process.exitCode = watched !== EXIT.ok ? watched : left.length ? EXIT.partial : EXIT.ok;
  });
}
