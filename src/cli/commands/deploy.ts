// `palisade deploy NAME[@VERSION] --labels k=v [--hosts a,b] [strategy flags] [--wait]`:
// NAME alone deploys the ruleset's latest version.
import type { Command } from "commander";
import { parseLabels } from "../args.ts";
import { usageError } from "../errors.ts";
import { resolveRef } from "../ref.ts";
import { idempotentPost, Rest, withRestOptions, type RestOptions } from "../rest.ts";
import { watchDeployment } from "./status.ts";

interface DeployOptions extends RestOptions {
  labels?: string[];
  hosts?: string;
  batchSize?: string;
  canary?: string;
  confirmTimeout?: string;
  haltOnFailure?: boolean;
  retries?: string;
  wait?: boolean;
  timeout: string;
}

const usage = (msg: string) => usageError(msg);

const int = (flag: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw usage(`${flag} wants a whole number, got "${v}"`);
  return Number(v);
};

export function deployBody(target: { ruleset: string; version: number }, o: DeployOptions): Record<string, unknown> {
  const labels = parseLabels(o.labels);
  const hosts = o.hosts
    ?.split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  if (!labels && !hosts?.length) throw usage("say which hosts: --labels k=v and/or --hosts a,b");
  const strategy = Object.fromEntries(
    Object.entries({
      batchSize: int("--batch-size", o.batchSize),
      canary: int("--canary", o.canary),
      confirmTimeoutSeconds: int("--confirm-timeout", o.confirmTimeout),
      retries: int("--retries", o.retries),
      haltOnFailure: o.haltOnFailure,
    }).filter(([, v]) => v !== undefined),
  );
  return { ...target, selector: { ...(hosts?.length ? { hosts } : {}), ...(labels ? { labels } : {}) }, strategy };
}

export function register(program: Command): void {
  withRestOptions(
    program
      .command("deploy")
      .description("roll a ruleset version out to the selected hosts")
      .argument("<ref>", "NAME@VERSION, or NAME for its latest version")
      .option("--labels <k=v...>", "hosts whose labels include these (repeat or comma-separate)")
      .option("--hosts <a,b>", "host names or ids")
      .option("--batch-size <n>", "hosts per batch after the canary")
      .option("--canary <n>", "hosts in the first batch")
      .option("--confirm-timeout <seconds>", "agent's commit-confirm window")
      .option("--halt-on-failure", "stop after a batch with a failure")
      .option("--no-halt-on-failure", "carry on after failures")
      .option("--retries <n>", "re-sends to a host that gave no result in time")
      .option("--wait", "show progress until the rollout ends")
      .option("--timeout <seconds>", "with --wait: give up watching after this long", "600"),
  ).action(async (ref: string, o: DeployOptions) => {
    const rest = new Rest(o);
    // Flags first: a bad flag is reported without a round trip.
    deployBody({ ruleset: "x", version: 1 }, o);
    const target = await resolveRef(rest, ref);
    const r = await idempotentPost<{ id: string; targets: number }>(rest, "/v1/deployments", deployBody(target, o));
    process.stdout.write(`deployment ${r.id}: ${target.ruleset}@${target.version} to ${r.targets} host(s)\n`);
    if (o.wait) process.exitCode = await watchDeployment(rest, r.id, { timeoutS: Number(o.timeout) });
  });
}
