// Agent configuration from flags and environment (flags win), parsed by one zod schema so
// every problem is reported at once with the flag that caused it.

import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { z } from "zod";
import { AgentError } from "./errors.ts";
import { LOG_LEVELS } from "../runtime/log.ts";
import { HostName } from "../engine/index.ts";

const HostPort = z
  .string()
  .regex(/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be HOST:PORT (IPv6 as [addr]:port)")
  .refine((s) => {
    const p = Number(s.slice(s.lastIndexOf(":") + 1));
    return p >= 1 && p <= 65535;
  }, "port must be 1-65535");

const seconds = (min: number, max: number) => z.coerce.number().min(min).max(max);

export const AgentConfig = z.strictObject({
  server: HostPort,
  /** Prefer the environment or a file: a flag shows in `ps`. */
  enrollToken: z.string().min(1).max(512).optional(),
  /** A file holding the enrollment token (read at start; may be deleted once enrolled). */
  enrollTokenFile: z.string().min(1).optional(),
  /** The API's enrollment listener (mutual TLS); default: --server's host, port + 1. */
  enrollServer: HostPort.optional(),
  stateDir: z.string().min(1),
  name: HostName,
  /** Telemetry interval in seconds: default 10, at least 1. */
  telemetryInterval: seconds(1, 3600).default(10),
  /** Seconds without a TelemetryAck before the oldest unacked batch is sent again (doubling up to 10 min). */
  telemetryAckTimeout: seconds(1, 3600).default(30),
  /** Drift check interval in seconds (0 = only on demand). */
  driftInterval: seconds(0, 86_400).default(60),
  /** Restore the desired state when drift is found (default true). */
  driftRestore: z.boolean().default(true),
  /** Network namespace the agent manages (tests, containers); unset = the agent's own. */
  netns: z
    .string()
    .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/)
    .optional(),
  logLevel: z.enum(LOG_LEVELS).default("info"),
  spoolMaxBytes: z.coerce
    .number()
    .int()
    .min(4096)
    .default(64 * 1024 * 1024),
  spoolMaxBatches: z.coerce.number().int().min(1).default(10_000),
  /**
   * Only for an agent enrolled with a token that pins no CA (an API with
   * PALISADE_GRPC_PLAINTEXT behind a TLS-terminating proxy): TLS with the system's roots.
   * Agents enrolled with a pinned token always use mutual TLS.
   */
  tls: z.boolean().default(false),
  /**
   * A plaintext-enrolled host moves to mutual TLS with it (POST /v1/hosts/:id/tls-upgrade).
   * From PALISADE_TLS_UPGRADE_SECRET or the file PALISADE_TLS_UPGRADE_SECRET_FILE names,
   * never a flag (argv shows in `ps`).
   */
  tlsUpgradeSecret: z.string().min(1).max(700).optional(),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

/** Every flag (camelCase key; `--kebab-case` on the command line) and its environment twin. */
export const FLAG_ENV: Record<string, string> = {
  server: "PALISADE_SERVER",
  enrollToken: "PALISADE_ENROLL_TOKEN",
  enrollTokenFile: "PALISADE_ENROLL_TOKEN_FILE",
  enrollServer: "PALISADE_ENROLL_SERVER",
  stateDir: "PALISADE_STATE_DIR",
  name: "PALISADE_NAME",
  telemetryInterval: "PALISADE_TELEMETRY_INTERVAL",
  telemetryAckTimeout: "PALISADE_TELEMETRY_ACK_TIMEOUT",
  driftInterval: "PALISADE_DRIFT_INTERVAL",
  driftRestore: "PALISADE_DRIFT_RESTORE",
  netns: "PALISADE_NETNS",
  logLevel: "PALISADE_LOG_LEVEL",
  spoolMaxBytes: "PALISADE_SPOOL_MAX_BYTES",
  spoolMaxBatches: "PALISADE_SPOOL_MAX_BATCHES",
  tls: "PALISADE_TLS",
};

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function bool(v: string | boolean | undefined): boolean | undefined {
  if (v === undefined || typeof v === "boolean") return v;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  return v as unknown as boolean; // let zod report it
}

/** The upgrade secret from the environment or its file; undefined when neither is set. */
export function tlsUpgradeSecret(env: NodeJS.ProcessEnv): string | undefined {
  const value = env.PALISADE_TLS_UPGRADE_SECRET || undefined;
  const file = env.PALISADE_TLS_UPGRADE_SECRET_FILE || undefined;
  if (value !== undefined && file !== undefined)
    throw new AgentError(
      "invalid_config",
      "set either PALISADE_TLS_UPGRADE_SECRET or PALISADE_TLS_UPGRADE_SECRET_FILE, not both",
    );
  if (file === undefined) return value?.trim();
  try {
    return readFileSync(file, "utf8").trim() || undefined;
  } catch (e) {
    // Once upgraded the secret is spent: a deleted file is not an error then.
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new AgentError(
      "invalid_config",
      `PALISADE_TLS_UPGRADE_SECRET_FILE: cannot read ${file}: ${(e as Error).message}`,
    );
  }
}

/** Parse argv (without node and script) and env into a config, or throw AgentError invalid_config. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  // Removed: an operator who still sets it learns why, instead of it being ignored.
  if (
    argv.some((a) => a === "--nflog-groups" || a.startsWith("--nflog-groups=")) ||
    env.PALISADE_NFLOG_GROUPS !== undefined
  ) {
    throw new AgentError(
      "invalid_config",
      "--nflog-groups (PALISADE_NFLOG_GROUPS) was removed: the agent reads exactly the NFLOG groups its applied ruleset logs to; remove the setting",
    );
  }
  const options = Object.fromEntries(
    Object.keys(FLAG_ENV).map((k) => [kebab(k), { type: k === "tls" ? ("boolean" as const) : ("string" as const) }]),
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (e) {
    throw new AgentError("invalid_config", `agent flags: ${(e as Error).message}`);
  }
  const raw: Record<string, unknown> = {};
  for (const [k, envName] of Object.entries(FLAG_ENV)) {
    const v = values[kebab(k)] ?? env[envName];
    if (v === undefined || v === "") continue;
    raw[k] = v;
  }
  raw.name ??= hostname();
  if (raw.enrollTokenFile !== undefined) {
    if (raw.enrollToken !== undefined)
      throw new AgentError(
        "invalid_config",
        "set either --enroll-token-file (PALISADE_ENROLL_TOKEN_FILE) or --enroll-token (PALISADE_ENROLL_TOKEN), not both",
      );
    try {
      raw.enrollToken = readFileSync(String(raw.enrollTokenFile), "utf8").trim();
    } catch (e) {
      // Once enrolled the token is no longer needed: a deleted file is not an error then.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        throw new AgentError(
          "invalid_config",
          `--enroll-token-file (PALISADE_ENROLL_TOKEN_FILE): cannot read ${String(raw.enrollTokenFile)}: ${(e as Error).message}`,
        );
    }
  }
  const upgrade = tlsUpgradeSecret(env);
  if (upgrade !== undefined) raw.tlsUpgradeSecret = upgrade;
  if (raw.driftRestore !== undefined) raw.driftRestore = bool(raw.driftRestore as string);
  if (raw.tls !== undefined) raw.tls = bool(raw.tls as string | boolean);
  const r = AgentConfig.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.map((i) => {
      const key = String(i.path[0] ?? "");
      const where = key ? `--${kebab(key)} (${FLAG_ENV[key] ?? ""})` : "config";
      return `${where}: ${i.message}`;
    });
    throw new AgentError("invalid_config", `invalid agent configuration:\n  ${lines.join("\n  ")}`);
  }
  return r.data;
}
