// `palisade deploy NAME@VERSION --labels k=v [--hosts a,b] [strategy flags] [--wait]`.
import type { Command } from "commander";
import { Rest, RestError, withRestOptions, type RestOptions } from "../rest.ts";
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

const usage = (msg: string) => new RestError(0, "invalid_request", msg);

export function parseRef(ref: string): { ruleset: string; version: number } {
  const m = /^([a-z0-9][a-z0-9._-]*)@(\d+)$/.exec(ref);
  if (!m) throw usage(`expected NAME@VERSION (e.g. web@3), got "${ref}"`);
  return { ruleset: m[1]!, version: Number(m[2]) };
}

export function parseLabels(pairs: string[] = []): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const p of pairs.flatMap((s) => s.split(",")).filter(Boolean)) {
    const i = p.indexOf("=");
    if (i <= 0) throw usage(`--labels wants k=v pairs, got "${p}"`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return Object.keys(out).length ? out : undefined;
}

const int = (flag: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw usage(`${flag} wants a whole number, got "${v}"`);
  return Number(v);
};

export function deployBody(ref: string, o: DeployOptions): Record<string, unknown> {
  const target = parseRef(ref);
  const labels = parseLabels(o.labels);
  const hosts = o.hosts?.split(",").map((h) => h.trim()).filter(Boolean);
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
      .argument("<ref>", "NAME@VERSION")
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
    const r = await rest.request<{ id: string; targets: number }>("POST", "/v1/deployments", deployBody(ref, o));
    process.stdout.write(`deployment ${r.id}: ${ref} to ${r.targets} host(s)\n`);
    if (o.wait) process.exitCode = await watchDeployment(rest, r.id, { timeoutS: Number(o.timeout) });
  });
}
