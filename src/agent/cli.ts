// The agent's command line, shared by `palisade agent` (src/cli/commands/agent.ts) and the
// standalone agent bundle (src/agent/bundle-main.ts, `palisade-agent` in the tarball):
// `--help` and `--version` answer without starting anything; otherwise flags + env ->
// config -> run until SIGTERM/SIGINT. The daemon's modules are loaded only to run it.
import { packageVersion } from "../runtime/install-root.ts";
import { AgentConfig, FLAG_ENV, loadConfig } from "./config.ts";
import { AgentError } from "./errors.ts";

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Usage text: every flag, its environment twin and its default (from the config schema). */
export function agentUsage(command: string): string {
  const rows = Object.entries(FLAG_ENV).map(([key, env]) => {
    const field = AgentConfig.shape[key as keyof typeof AgentConfig.shape];
    const probe = field?.safeParse(undefined);
    // loadConfig fills a missing --name with the host name before the schema sees it.
    const dflt =
      key === "name"
        ? "default: the host name"
        : !probe?.success
          ? "required"
          : probe.data === undefined
            ? "optional"
            : `default ${JSON.stringify(probe.data)}`;
    return [`  --${kebab(key)}${key === "tls" ? "" : " VALUE"}`, env, dflt] as const;
  });
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return [
    `Usage: ${command} [flags]`,
    "",
    "Runs the Palisade host agent: enrolls once (--enroll-token), then holds one gRPC stream",
    "to the API, applies the rulesets it is sent to nftables and ships telemetry back.",
    "Every flag has an environment twin; a flag wins over its variable.",
    "",
    ...rows.map(([flag, env, d]) => `${flag.padEnd(w0)}  ${env.padEnd(w1)}  ${d}`),
    "",
    "A host enrolled over plaintext moves to mutual TLS in place with a secret from",
    "POST /v1/hosts/:id/tls-upgrade, given in PALISADE_TLS_UPGRADE_SECRET or the file",
    "PALISADE_TLS_UPGRADE_SECRET_FILE names (never a flag): the agent upgrades at start,",
    `or \`${command} upgrade-tls [flags]\` does it once and exits (restart the agent then).`,
    "",
    `  -h, --help${" ".repeat(Math.max(0, w0 - 12))}  print this help`,
    `  -V, --version${" ".repeat(Math.max(0, w0 - 15))}  print the version`,
    "",
  ].join("\n");
}

/** Run the agent command line (`argv` without node and script). */
export async function agentCli(argv: string[], command = "palisade agent"): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) return void process.stdout.write(agentUsage(command));
  if (argv.includes("--version") || argv.includes("-V"))
    return void process.stdout.write(`${packageVersion(import.meta.url)}\n`);
  if (argv[0] === "upgrade-tls") return upgradeTlsCli(argv.slice(1));
  const config = loadConfig(argv);
  const { runAgent } = await import("./main.ts");
  await runAgent(config);
}

/** `palisade agent upgrade-tls`: the in-place move to mutual TLS, once; the running agent picks it up at its restart. */
async function upgradeTlsCli(argv: string[]): Promise<void> {
  const config = loadConfig(argv);
  if (!config.tlsUpgradeSecret)
    throw new AgentError(
      "invalid_config",
      "upgrade-tls needs the secret from POST /v1/hosts/:id/tls-upgrade in PALISADE_TLS_UPGRADE_SECRET or PALISADE_TLS_UPGRADE_SECRET_FILE",
    );
  const { StateDir } = await import("./state.ts");
  const { upgradeToMutualTls } = await import("./upgrade.ts");
  const state = await StateDir.open(config.stateDir);
  const credential = await state.readCredential();
  if (!credential)
    throw new AgentError("upgrade_failed", `no credential.json in ${config.stateDir}: this host never enrolled`);
  if (credential.channel === "mtls" || (await state.readTls()))
    throw new AgentError("upgrade_failed", `host "${credential.hostName}" is on mutual TLS already`);
  const up = await upgradeToMutualTls({
    server: config.server,
    tls: config.tls,
    state,
    credential,
    secret: config.tlsUpgradeSecret,
    deadlineMs: 15_000,
  });
  process.stdout.write(
    `host ${credential.hostName} (${credential.hostId}) upgraded to mutual TLS: tls.json written, agent port ${up.material.server}; restart the agent to connect with its certificate\n`,
  );
}
