// The host selector of the verbs that set per-host state (bans, conditions): --hosts and
// --labels in, the request's `selector` out, and a stored selector as table text.
import type { Command } from "commander";
import { parseLabels } from "./args.ts";

export interface SelectorView {
  hosts: string[] | null;
  labels: Record<string, string>;
}

export function withSelectorOptions(cmd: Command): Command {
  return cmd
    .option("--hosts <a,b>", "host names or ids")
    .option("--labels <k=v...>", "hosts whose labels include these (repeat or comma-separate)");
}

/** The request's selector; undefined (every host) when neither flag names any. */
export function selectorBody(o: {
  hosts?: string;
  labels?: string[];
}): { hosts?: string[]; labels?: Record<string, string> } | undefined {
  const labels = parseLabels(o.labels);
  const hosts = o.hosts
    ?.split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  return hosts?.length || labels ? { ...(hosts?.length && { hosts }), ...(labels && { labels }) } : undefined;
}

export const selectorText = (s: SelectorView) => {
  const parts = [
    ...(s.hosts ? [`hosts=${s.hosts.join(",")}`] : []),
    ...Object.entries(s.labels).map(([k, v]) => `${k}=${v}`),
  ];
  return parts.length ? parts.join(" ") : "all hosts";
};
