// `palisade hosts`: the fleet's hosts.
//   ls [--label k=v] [--connection c]   one line per host (connection, last seen, versions, drift)
//   show HOST                           connection, versions, what the agent reported about its
//                                       kernel and tools, and every "unavailable" line it sent
//   label HOST k=v... k-...             set or (k-) remove labels
//   disable|enable HOST                 refuse (or accept again) the host's agent credential
//   delete HOST                         delete the host and revoke its credential
//   tls-upgrade HOST                    a single-use secret that moves a plaintext-enrolled host to
//                                       mutual TLS in place (shown only now)
import type { Command } from "commander";
import { usageError } from "../errors.ts";
import { data, formatOf, labelText, out, printList, printOne, when, withOutput, type Column } from "../output.ts";
import { Rest, seg, withRestOptions, type RestOptions } from "../rest.ts";
import { relative } from "../time.ts";

type Ref = { ruleset: string; version: number } | null;
export interface Host {
  id: string;
  name: string;
  labels: Record<string, string>;
  connection: string;
  disabled?: boolean;
  lastSeenAt: string | null;
  desiredVersion: Ref;
  appliedVersion: Ref;
  drift: boolean;
  capabilities: {
    nftVersion?: string;
    kernel?: string;
    agentVersion?: string;
    unavailable?: { program: string; reason: string }[];
  };
  createdAt?: string;
}

const ref = (v: Ref) => (v ? `${v.ruleset}@${v.version}` : "-");

export const HOST_COLUMNS: Column<Host>[] = [
  { header: "NAME", value: (h) => h.name },
  { header: "CONNECTION", value: (h) => (h.disabled ? `${h.connection},disabled` : h.connection) },
  when("LAST SEEN", (h) => h.lastSeenAt),
  { header: "APPLIED", value: (h) => ref(h.appliedVersion) },
  { header: "DESIRED", value: (h) => ref(h.desiredVersion) },
  { header: "DRIFT", value: (h) => (h.drift ? "yes" : "no") },
  { header: "LABELS", value: (h) => labelText(h.labels), wide: true },
  { header: "AGENT", value: (h) => h.capabilities?.agentVersion, wide: true },
  { header: "KERNEL", value: (h) => h.capabilities?.kernel, wide: true },
  { header: "ID", value: (h) => h.id, wide: true },
];

export function hostLines(h: Host, _wide = false, now = Date.now()): string[] {
  const c = h.capabilities ?? {};
  const unavailable = c.unavailable ?? [];
  return [
    `${h.name} (${h.id})`,
    `  connection: ${h.connection}${h.disabled ? " (disabled)" : ""}${h.lastSeenAt ? `, last seen ${relative(h.lastSeenAt, now)} (${h.lastSeenAt})` : ""}`,
    `  labels:     ${labelText(h.labels) || "-"}`,
    `  applied:    ${ref(h.appliedVersion)}  desired: ${ref(h.desiredVersion)}${h.drift ? "  DRIFTED" : ""}`,
    `  agent:      ${c.agentVersion || "-"}  nft ${c.nftVersion || "-"}  kernel ${c.kernel || "-"}`,
    ...(unavailable.length
      ? ["  unavailable:", ...unavailable.map((u) => `    ${u.reason}`)]
      : ["  unavailable: none"]),
  ];
}

/** `k=v` sets, `k-` removes (as kubectl label does). */
export function labelPatch(args: string[]): Record<string, string | null> {
  const patch: Record<string, string | null> = {};
  for (const a of args) {
    const set = /^([^=\s]+)=(.*)$/.exec(a);
    const del = /^([^=\s]+)-$/.exec(a);
    if (set) patch[set[1]!] = set[2]!;
    else if (del) patch[del[1]!] = null;
    else throw usageError(`"${a}" is neither key=value (set) nor key- (remove)`);
  }
  if (!Object.keys(patch).length) throw usageError("give at least one key=value or key-");
  return patch;
}

type Opts = RestOptions & { output?: string; json?: boolean };

export function register(program: Command): void {
  const hosts = program.command("hosts").description("the fleet's hosts");
  withOutput(
    withRestOptions(
      hosts
        .command("ls")
        .alias("list")
        .description("every host: connection, last seen, applied and desired version, drift")
        .option("-l, --label <k=v,...>", "only hosts whose labels include these")
        .option("--connection <state>", "only hosts in this state: never_connected, connected, disconnected"),
    ),
  ).action(async (o: Opts & { label?: string; connection?: string }) => {
    const items = await new Rest(o).all<Host>("/v1/hosts", { label: o.label, connection: o.connection });
    printList(items, HOST_COLUMNS, formatOf(o));
  });
  withOutput(
    withRestOptions(
      hosts
        .command("show")
        .description("one host: connection, versions, and what does not work on it")
        .argument("<host>", "host id or name"),
    ),
  ).action(async (id: string, o: Opts) => {
    printOne(await new Rest(o).get<Host>(`/v1/hosts/${seg(id)}`), formatOf(o), (h) => hostLines(h));
  });
  withOutput(
    withRestOptions(
      hosts
        .command("label")
        .description("set (key=value) or remove (key-) labels of a host")
        .argument("<host>", "host id or name")
        .argument("<labels...>", "key=value to set, key- to remove"),
    ),
  ).action(async (id: string, labels: string[], o: Opts) => {
    const h = await new Rest(o).request<Host>("PATCH", `/v1/hosts/${seg(id)}`, { labels: labelPatch(labels) });
    printOne(h, formatOf(o), (x) => [`${x.name} labels: ${labelText(x.labels) || "-"}`]);
  });
  for (const verb of ["disable", "enable"] as const) {
    withOutput(
      withRestOptions(
        hosts
          .command(verb)
          .description(
            verb === "disable"
              ? "refuse the host's agent credential and close its stream (enable undoes it)"
              : "accept a disabled host's agent again",
          )
          .argument("<host>", "host id or name"),
      ),
    ).action(async (id: string, o: Opts) => {
      const h = await new Rest(o).request<Host>("POST", `/v1/hosts/${seg(id)}/${verb}`);
      printOne(h, formatOf(o), (x) => [`${x.name} ${verb}d`]);
    });
  }
  withOutput(
    withRestOptions(
      hosts
        .command("tls-upgrade")
        .description("a single-use secret that moves a host enrolled over plaintext to mutual TLS (shown only now)")
        .argument("<host>", "host id or name"),
    ),
  ).action(async (id: string, o: Opts) => {
    const u = await new Rest(o).request<{ hostName: string; secret: string; expiresAt: string }>(
      "POST",
      `/v1/hosts/${seg(id)}/tls-upgrade`,
    );
    const f = formatOf(o);
    if (f === "json" || f === "yaml") return out(data(u, f));
    out(
      [
        `upgrade secret for host ${u.hostName} (usable once, expires ${u.expiresAt}):`,
        `  ${u.secret}`,
        "on the host, put it in a file the agent's user can read, then (same --server and --state-dir as the agent):",
        "  PALISADE_TLS_UPGRADE_SECRET_FILE=<file> palisade agent upgrade-tls --server <API host>:<legacy port> --state-dir <dir>",
        "and restart the agent; or give the agent the variable and restart it.",
      ].join("\n") + "\n",
    );
  });
  withRestOptions(
    hosts
      .command("delete")
      .alias("rm")
      .description("delete a host and revoke its credential (its agent must enroll again)")
      .argument("<host>", "host id or name"),
  ).action(async (id: string, o: RestOptions) => {
    await new Rest(o).request("DELETE", `/v1/hosts/${seg(id)}`);
    out(`host ${id} deleted\n`);
  });
}
