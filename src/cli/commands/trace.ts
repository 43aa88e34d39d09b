// `palisade trace POLICY.yaml|NAME@V --packet "tcp 203.0.113.5:40000 -> 198.51.100.1:22 flags S iif wan0"`:
// the rules a packet meets, chain by chain, and its verdict, as the kernel itself decides
// (the rendering loaded into a throwaway network namespace, see docs/trace.md).
import type { Command } from "commander";
import { stringify } from "yaml";
import {
  driver,
  parsePacketSpec,
  renderNft,
  validatePolicy,
  type PacketSpec,
  type PacketTrace,
} from "../../engine/index.ts";
import { EXIT, usageError } from "../errors.ts";
import { formatDiagnostic, readPolicyFile } from "../policy-file.ts";
import { Rest, RestError, withRestOptions, type RestOptions } from "../rest.ts";

interface TraceCliOptions extends RestOptions {
  packet: string[];
  count: string;
  output: string;
}

export function register(program: Command): void {
  withRestOptions(
    program
      .command("trace")
      .description(
        "what-if: the rules packets meet and their verdict, from the kernel in a throwaway namespace (needs CAP_NET_ADMIN)",
      )
      .argument("<policy>", "policy document (.yaml/.json) or NAME@VERSION of a stored ruleset")
      .requiredOption(
        "--packet <spec>",
        'packet, e.g. "tcp 203.0.113.5:40000 -> 198.51.100.1:22 flags S iif wan0" (add "from local oif wan0" for one the host sends); repeat for a sequence',
        (v: string, acc: string[] = []) => [...acc, v],
      )
      .option(
        "--count <n>",
        "repeat the sequence N times as new connections on the same ruleset (shows load balancing as a distribution)",
        "1",
      )
      .option("-o, --output <format>", "table, json or yaml (wide: same as table)", "table"),
  ).action(async (ref: string, o: TraceCliOptions) => {
    if (!["table", "wide", "json", "yaml"].includes(o.output))
      throw usageError(`--output must be table, wide, json or yaml, got "${o.output}"`);
    if (!/^\d+$/.test(o.count) || Number(o.count) < 1 || Number(o.count) > 200)
      throw usageError(`--count must be a whole number 1-200, got "${o.count}"`);
    const packets: PacketSpec[] = o.packet.map((p) => parsePacketSpec(p));
    const text = await rendering(ref, o);
    if (text === undefined) return;
    // Interrupted: exit (which deletes the trace's namespaces) instead of dying with them left behind.
    for (const sig of ["SIGINT", "SIGTERM"] as const)
      process.once(sig, () => process.exit(sig === "SIGINT" ? 130 : 143));
    const result = await driver.trace({ rulesetText: text, packets, count: Number(o.count) });
    if (o.output === "json" || o.output === "yaml") {
      const runs = result.runs.map((run) => run.map(jsonTrace));
      const body =
        runs.length === 1
          ? runs[0]!.length === 1
            ? runs[0]![0]
            : { packets: runs[0] }
          : {
              runs: runs.map((r) => (r.length === 1 ? r[0] : { packets: r })),
              distribution: distribution(result.runs),
            };
      process.stdout.write(
        o.output === "yaml" ? stringify(body, { lineWidth: 0 }) : JSON.stringify(body, null, 2) + "\n",
      );
      return;
    }
    process.stdout.write(formatTable(result.runs));
  });
}

function jsonTrace(t: PacketTrace): Record<string, unknown> {
  return {
    packet: t.packet,
    verdict: t.verdict,
    ...(t.finalDestination ? { finalDestination: t.finalDestination } : {}),
    rules: t.steps,
  };
}

/** Per packet of the sequence: "verdict -> destination" counted over the repetitions. */
export function distribution(runs: PacketTrace[][]): Array<Record<string, number>> {
  const out: Array<Record<string, number>> = [];
  for (const run of runs) {
    run.forEach((t, i) => {
      const key = `${t.verdict}${t.finalDestination ? ` ${t.finalDestination}` : ""}`;
      const d = (out[i] ??= {});
      d[key] = (d[key] ?? 0) + 1;
    });
  }
  return out;
}

export function formatTable(runs: PacketTrace[][]): string {
  const lines: string[] = [];
  const one = (t: PacketTrace) => {
    lines.push(`packet: ${t.packet}`);
    const rows = t.steps.map((s) => [`${s.table} ${s.chain}`, s.rule, s.verdict]);
    const w0 = Math.max(5, ...rows.map((r) => r[0]!.length));
    const w1 = Math.max(4, ...rows.map((r) => Math.min(r[1]!.length, 100)));
    lines.push(`${"CHAIN".padEnd(w0)}  ${"RULE".padEnd(w1)}  VERDICT`);
    for (const r of rows) lines.push(`${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(w1)}  ${r[2]}`);
    if (t.finalDestination) lines.push(`destination: ${t.finalDestination}`);
  };
  if (runs.length === 1) {
    const run = runs[0]!;
    run.forEach((t, i) => {
      one(t);
      if (i < run.length - 1) lines.push(`verdict: ${t.verdict}`, "");
    });
    lines.push(`verdict: ${run[run.length - 1]!.verdict}`);
    return lines.join("\n") + "\n";
  }
  // Repeated: the first repetition in full, then the distribution; the last line is the most common final verdict.
  one(runs[0]![runs[0]!.length - 1]!);
  lines.push("", `over ${runs.length} traces:`);
  const dist = distribution(runs);
  const last = dist[dist.length - 1]!;
  for (const [k, n] of Object.entries(last).sort((a, b) => b[1] - a[1]))
    lines.push(`  ${String(n).padStart(4)}  ${((100 * n) / runs.length).toFixed(1).padStart(5)} %  ${k}`);
  const verdicts = new Map<string, number>();
  for (const run of runs) {
    const v = run[run.length - 1]!.verdict;
    verdicts.set(v, (verdicts.get(v) ?? 0) + 1);
  }
  lines.push(`verdict: ${[...verdicts.entries()].sort((a, b) => b[1] - a[1])[0]![0]}`);
  return lines.join("\n") + "\n";
}

async function rendering(ref: string, o: TraceCliOptions): Promise<string | undefined> {
  const m = /^([a-z0-9][a-z0-9._-]*)@(\d+)$/.exec(ref);
  let document: unknown;
  if (m && !/\.(ya?ml|json)$/.test(ref)) {
    const v = await new Rest(o).request<{ document: unknown }>(
      "GET",
      `/v1/rulesets/${encodeURIComponent(m[1]!)}/versions/${m[2]}`,
    );
    document = v.document;
  } else {
    const parsed = await readPolicyFile(ref);
    if (!parsed.ok) {
      for (const d of parsed.errors) process.stderr.write(formatDiagnostic(d) + "\n");
      process.exitCode = EXIT.invalid;
      return undefined;
    }
    document = parsed.value;
  }
  const checked = validatePolicy(document, { target: "nftables" });
  if (!checked.ok || !checked.policy) {
    for (const d of checked.errors) process.stderr.write(formatDiagnostic(d) + "\n");
    process.stderr.write(`${ref}: not traced (${checked.errors.length} errors)\n`);
    process.exitCode = EXIT.invalid;
    return undefined;
  }
  const r = renderNft(checked.policy);
  if (!r.ok) {
    for (const d of r.errors) process.stderr.write(formatDiagnostic(d) + "\n");
    throw new RestError(0, "render_failed", `${ref}: not rendered`);
  }
  return r.text;
}
