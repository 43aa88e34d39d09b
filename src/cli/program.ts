// The `palisade` program (run by main.ts). Each verb lives in src/cli/commands/<verb>.ts and exports
// `register(program)`; COMMANDS below names it. Only the verb being run is imported: the
// others appear in `--help` by name and summary alone, so `palisade --version`, `--help`
// or `render` never load Fastify, Prisma or gRPC (each verb's module graph is its own
// chunk in dist/cli, see scripts/build.mjs). A new verb: a file there and a line here
// (test/unit/cli/lazy-commands.test.ts checks the two agree).
import { Command } from "commander";
import { packageVersion } from "../runtime/install-root.ts";
import type { CommandEntry } from "./verb.ts";

export type { CommandEntry, CommandModule } from "./verb.ts";

/** Every verb: its arguments and one-line summary as its module declares them, and its loader. */
export const COMMANDS: Record<string, CommandEntry> = {
  account: {
    args: "[options]",
    summary: "per-address accounting of the fleet, like iptaccount: -a lists tables, -l NAME shows one",
    load: () => import("./commands/account.ts"),
  },
  agent: {
    args: "[flags...]",
    summary:
      "run the host agent (flags: --server --enroll-token --state-dir --name --netns --telemetry-interval --drift-interval ...; env PALISADE_*)",
    load: () => import("./commands/agent.ts"),
  },
  audit: { args: "", summary: "the audit log: ls (who changed what, when)", load: () => import("./commands/audit.ts") },
  ca: {
    args: "",
    summary: "the agents' CA: init (create it before the first server start; prints its SHA-256)",
    load: () => import("./commands/ca.ts"),
  },
  completion: {
    args: "<shell>",
    summary: "print a shell completion script: bash or zsh (source <(palisade completion bash))",
    load: () => import("./commands/completion.ts"),
  },
  config: {
    args: "",
    summary:
      "contexts of ~/.config/palisade/config.yaml: get-contexts, use-context NAME, current-context, delete-context NAME",
    load: () => import("./commands/config.ts"),
  },
  deploy: {
    args: "[options] <ref>",
    summary: "roll a ruleset version out to the selected hosts",
    load: () => import("./commands/deploy.ts"),
  },
  deployments: {
    args: "",
    summary: "rollouts: ls, show ID (with its hosts), watch ID, rollback ID",
    load: () => import("./commands/deployments.ts"),
  },
  diff: {
    args: "[options] <ref> [other]",
    summary: "what changed between two versions of a ruleset (default: the latest against the one before)",
    load: () => import("./commands/diff.ts"),
  },
  "enrollment-tokens": {
    args: "",
    summary: "one-time tokens agents enroll with: create, ls, revoke ID",
    load: () => import("./commands/enrollment-tokens.ts"),
  },
  bans: {
    args: "",
    summary: "fleet-wide ban lists: add, ls, rm (no ruleset version)",
    load: () => import("./commands/bans.ts"),
  },
  conditions: {
    args: "",
    summary: "operator conditions (xt_condition flags): ls, set NAME on|off (no ruleset version)",
    load: () => import("./commands/conditions.ts"),
  },
  geoip: {
    args: "",
    summary: "country data of the geoip match: update [--file CSV], ls (no ruleset version)",
    load: () => import("./commands/geoip.ts"),
  },
  dynamic: {
    args: "",
    summary: "what the kernels' dynamic sets hold per host (trap bans, SYN-flood, recent, meters): ls, rm",
    load: () => import("./commands/dynamic.ts"),
  },
  hosts: { args: "", summary: "the fleet's hosts", load: () => import("./commands/hosts.ts") },
  import: {
    args: "[options] <file>",
    summary: "import an iptables script, iptables-save output or ipmasqadm lines as a policy document",
    load: () => import("./commands/import.ts"),
  },
  login: {
    args: "[options]",
    summary: "check a server URL and token, store them as a context of ~/.config/palisade/config.yaml and use it",
    load: () => import("./commands/login.ts"),
  },
  logs: {
    args: "[options]",
    summary: "packet log events of the fleet, oldest first; -f follows new ones live",
    load: () => import("./commands/logs.ts"),
  },
  migrate: {
    args: "",
    summary: "apply pending database migrations (DATABASE_URL), creating the database if needed",
    load: () => import("./commands/migrate.ts"),
  },
  push: {
    args: "[options] [file]",
    summary: "store a policy file as the next version of a ruleset (created if missing)",
    load: () => import("./commands/push.ts"),
  },
  quotas: {
    args: "",
    summary: "quota2 quotas and growing counters of the fleet",
    load: () => import("./commands/quotas.ts"),
  },
  render: {
    args: "[options] <file>",
    summary: "compile a policy document to nftables (default) or iptables-restore text",
    load: () => import("./commands/render.ts"),
  },
  rulesets: {
    args: "",
    summary: "named policies: ls, show NAME (their versions: palisade versions)",
    load: () => import("./commands/rulesets.ts"),
  },
  server: {
    args: "[options]",
    summary:
      "apply migrations, then serve the API (config from DATABASE_URL, REDIS_URL, HOST, PORT, GRPC_PORT, PALISADE_ADMIN_TOKEN)",
    load: () => import("./commands/server.ts"),
  },
  status: {
    args: "[options] [deployment]",
    summary: "recent deployments, or one deployment's progress until its rollout ends",
    load: () => import("./commands/status.ts"),
  },
  tokens: {
    args: "",
    summary: "API tokens: create NAME --role R, ls, revoke ID",
    load: () => import("./commands/tokens.ts"),
  },
  trace: {
    args: "[options] <policy>",
    summary:
      "what-if: the rules packets meet and their verdict, from the kernel in a throwaway namespace (needs CAP_NET_ADMIN)",
    load: () => import("./commands/trace.ts"),
  },
  validate: {
    args: "[options] <file>",
    summary: "validate and lint a policy document (YAML or JSON) without a server",
    load: () => import("./commands/validate.ts"),
  },
  versions: {
    args: "",
    summary: "a ruleset's immutable versions: ls NAME, show NAME[@V]",
    load: () => import("./commands/versions.ts"),
  },
};

/** The verb `args` (argv without node and script) runs: the first word, or the one after `help`. */
export function selectedVerb(args: string[]): string | undefined {
  const words = args.filter((a) => !a.startsWith("-"));
  return words[0] === "help" ? words[1] : words[0];
}

/** The program with the selected verb loaded and every other verb as a name and summary. */
export async function buildProgram(args: string[]): Promise<Command> {
  const program = new Command("palisade")
    .description("Central firewall manager: versioned rulesets, nftables agents, per-IP accounting.")
    .version(packageVersion(import.meta.url), "-V, --version", "print the version")
    .showHelpAfterError("hint: add --help for usage")
    .configureHelp({
      subcommandTerm: (cmd) => `${cmd.name()}${COMMANDS[cmd.name()]?.args ? ` ${COMMANDS[cmd.name()]!.args}` : ""}`,
    })
    // Command-line mistakes in the CLI's one error format (errors.ts), exit status 2 (main.ts).
    .configureOutput({ outputError: (s, write) => write(s.replace(/^error: /, "error: usage: ")) })
    .exitOverride();
  const verb = selectedVerb(args);
  for (const [name, entry] of Object.entries(COMMANDS)) {
    if (name === verb) {
      (await entry.load()).register(program, COMMANDS);
    } else {
      // Listed for --help; never run (a verb that runs is the selected one, loaded above).
      program.command(name).description(entry.summary).allowUnknownOption().allowExcessArguments().helpOption(false);
    }
  }
  return program;
}
