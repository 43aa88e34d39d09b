// `palisade hosts show HOST`: one host (id or name) as a few lines: connection, versions,
// what the agent reported about its kernel and tools, and every "unavailable" line the
// agent sent (e.g. "log events unavailable: tcpdump not installed"). --json prints the
// API's object as is.
import type { Command } from "commander";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";

interface Host {
  id: string;
  name: string;
  labels: Record<string, string>;
  connection: string;
  lastSeenAt: string | null;
  desiredVersion: { ruleset: string; version: number } | null;
  appliedVersion: { ruleset: string; version: number } | null;
  drift: boolean;
  capabilities: { nftVersion?: string; kernel?: string; agentVersion?: string; unavailable?: { program: string; reason: string }[] };
}

const ref = (v: Host["appliedVersion"]) => (v ? `${v.ruleset}@${v.version}` : "-");

export function hostLines(h: Host): string[] {
  const c = h.capabilities ?? {};
  const labels = Object.entries(h.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
  const unavailable = c.unavailable ?? [];
  return [
    `${h.name} (${h.id})`,
    `  connection: ${h.connection}${h.lastSeenAt ? `, last seen ${h.lastSeenAt}` : ""}`,
    `  labels:     ${labels || "-"}`,
    `  applied:    ${ref(h.appliedVersion)}  desired: ${ref(h.desiredVersion)}${h.drift ? "  DRIFTED" : ""}`,
    `  agent:      ${c.agentVersion || "-"}  nft ${c.nftVersion || "-"}  kernel ${c.kernel || "-"}`,
    ...(unavailable.length ? ["  unavailable:", ...unavailable.map((u) => `    ${u.reason}`)] : ["  unavailable: none"]),
  ];
}

export function register(program: Command): void {
  const hosts = program.command("hosts").description("the fleet's hosts");
  withRestOptions(
    hosts
      .command("show")
      .description("one host: connection, versions, and what does not work on it")
      .argument("<host>", "host id or name")
      .option("--json", "print the API's JSON"),
  ).action(async (id: string, o: RestOptions & { json?: boolean }) => {
    const h = await new Rest(o).request<Host>("GET", `/v1/hosts/${encodeURIComponent(id)}`);
    process.stdout.write(o.json ? JSON.stringify(h, null, 2) + "\n" : hostLines(h).join("\n") + "\n");
  });
}
