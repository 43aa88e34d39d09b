// Configuration comes from the environment only (README, "Configuration"), parsed once with zod so a bad
// value stops the process with a message naming the variable.
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { z } from "zod";
import { retentionFromEnv, type Retention } from "./telemetry/retention.ts";

const port = z.coerce.number().int().min(0).max(65535);

const EnvSchema = z.object({
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).default("postgresql://postgres@127.0.0.1:5432/palisade"),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default("redis://127.0.0.1:6379"),
  HOST: z.string().min(1).default("0.0.0.0"),
  PORT: port.default(8080),
  GRPC_PORT: port.default(50051),
  PALISADE_ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  /** Where a generated first admin token is written (mode 0600); relative to the working directory. */
  PALISADE_INITIAL_TOKEN_FILE: z.string().min(1).default("palisade-initial-admin-token"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Requests per minute per token (or per client address when unauthenticated). */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(1200),
  /** Concurrent live log streams (SSE) one token may hold on one server (then 429). */
  SSE_STREAMS_PER_TOKEN: z.coerce.number().int().min(1).max(10_000).default(10),
  /** Agent channel without TLS: a lab only (a warning at every start). */
  PALISADE_GRPC_PLAINTEXT: z.enum(["0", "1", "true", "false", "yes", "no"]).default("0"),
  /** Port of the enrollment listener (server-authenticated TLS; agents without a certificate yet). Default GRPC_PORT + 1. */
  GRPC_ENROLL_PORT: port.optional(),
  /**
   * Transition: a plaintext port, beside the mutual TLS ones, for hosts enrolled before mutual
   * TLS (bearer Connect and the in-place Upgrade). Unset: none. A warning at every start.
   */
  PALISADE_GRPC_LEGACY_PORT: port.optional(),
  /** Encrypts the CA key at rest (at least 32 characters), or a file holding it. */
  PALISADE_SECRET_KEY: z.string().optional(),
  PALISADE_SECRET_KEY_FILE: z.string().optional(),
  /** Redis key prefix of both BullMQ queues, rollouts and telemetry (side-by-side installs and tests isolate themselves with it). */
  PALISADE_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{1,64}$/, "letters, digits, ':', '_' or '-', at most 64")
    .default("palisade:bull"),
  /** A rollout whose replica stops renewing its lock is taken over after about this long. */
  PALISADE_DEPLOY_LOCK_MS: z.coerce.number().int().min(2_000).max(600_000).default(15_000),
  /** Names (DNS or IP) in each replica's server certificate, comma separated; agents' --server must use one. */
  PALISADE_TLS_SERVER_NAMES: z.string().optional(),
  /** Lifetime of an agent's client certificate in days (renewed at about two thirds). */
  PALISADE_AGENT_CERT_DAYS: z.coerce.number().min(1).max(365).default(30),
  /** REST over HTTPS: the listener's certificate chain and private key (PEM files); both or neither. */
  PALISADE_HTTPS_CERT_FILE: z.string().optional(),
  PALISADE_HTTPS_KEY_FILE: z.string().optional(),
  /** Strict-Transport-Security max-age sent over HTTPS (0: no header). */
  PALISADE_HSTS_MAX_AGE: z.coerce.number().int().min(0).max(63_072_000).default(31_536_000),
  /**
   * Addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed, comma separated.
   * Unset: the peer's address is the client's (behind a proxy every client then shares the
   * proxy's rate limits and sign-in throttle).
   */
  PALISADE_TRUST_PROXY: z
    .string()
    .transform((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== ""),
    )
    .pipe(
      z
        .array(
          z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()], { error: "each entry must be an IP address or CIDR" }),
        )
        .min(1),
    )
    .optional(),
  /** When set, GET /metrics needs `Authorization: Bearer <this>` (Prometheus: authorization.credentials). */
  PALISADE_METRICS_TOKEN: z
    .string()
    .min(16, "must be at least 16 characters")
    .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces (a bearer token)")
    .optional(),
  /** How long /metrics reuses the fleet snapshot it read from PostgreSQL and Redis (0: a fresh one every scrape). */
  PALISADE_METRICS_CACHE_SECONDS: z.coerce.number().min(0).max(300).default(5),
});

export type Env = z.infer<typeof EnvSchema>;

/**
 * A host's full ban state is one BanUpdate; an entry is at most ~60 bytes on the wire (a
 * 43-character IPv6 prefix, an 11-digit TTL, framing), so 100k entries stay near 6 MB,
 * under the 8 MiB gRPC message limit.
 */
export const MAX_BANS_PER_HOST = 100_000;

export interface Config {
  databaseUrl: string;
  redisUrl: string;
  host: string;
  port: number;
  grpcPort: number;
  adminToken: string | undefined;
  /** Where a generated first admin token is written (0600), never the log. */
  initialTokenFile: string;
  logLevel: Env["LOG_LEVEL"];
  rateLimitPerMinute: number;
  sseStreamsPerToken: number;
  /** Largest request body accepted, in bytes (413 above). */
  bodyLimit: number;
  /** Active bans one host may be selected by: its full ban state must fit one gRPC message. */
  bansMaxPerHost: number;
  /** The agents' gRPC channel (docs/security.md, "Transport"). */
  agentTls: AgentTlsConfig;
  /** Both BullMQ queues (rollouts, telemetry jobs). */
  queue: QueueSettings;
  /** How long each kind of telemetry is kept (PALISADE_RETENTION_*). */
  retention: Retention;
  /** REST over HTTPS (PALISADE_HTTPS_*); undefined: plain HTTP (behind a TLS-terminating proxy). */
  https: HttpsConfig | undefined;
  /** GET /metrics (PALISADE_METRICS_*). */
  metrics: MetricsSettings;
  /** Reverse proxies whose X-Forwarded-For names the client (PALISADE_TRUST_PROXY); empty: none. */
  trustProxy: string[];
}

export interface HttpsConfig {
  certPem: string;
  keyPem: string;
  /** Strict-Transport-Security max-age in seconds; 0 sends no header. */
  hstsMaxAge: number;
}

export interface MetricsSettings {
  /** Bearer token a scrape must present; undefined: /metrics is public. */
  token: string | undefined;
  /** How long the fleet snapshot (database and Redis reads) is reused, in ms. */
  cacheMs: number;
}

export interface QueueSettings {
  prefix: string;
  lockMs: number;
}

export type AgentTlsConfig =
  | { mode: "plaintext" }
  | {
      mode: "mtls";
      /** Undefined when unset: the server refuses to start (checked when the CA is loaded). */
      secretKey: string | undefined;
      enrollPort: number;
      serverNames: string[];
      clientCertTtlSeconds: number;
      /** Transition: the legacy plaintext port (PALISADE_GRPC_LEGACY_PORT); undefined: none. */
      legacyPort?: number;
    };

export class ConfigError extends Error {
  override name = "ConfigError";
}

export const BODY_LIMIT_BYTES = 5 * 1024 * 1024;

function secretKey(e: Env): string | undefined {
  if (e.PALISADE_SECRET_KEY !== undefined) return e.PALISADE_SECRET_KEY;
  if (e.PALISADE_SECRET_KEY_FILE === undefined) return undefined;
  try {
    return readFileSync(e.PALISADE_SECRET_KEY_FILE, "utf8").trim();
  } catch (err) {
    throw new ConfigError(
      `invalid configuration:\n  PALISADE_SECRET_KEY_FILE: cannot read ${e.PALISADE_SECRET_KEY_FILE}: ${(err as Error).message}`,
    );
  }
}

/** Both files read and checked now, so a wrong path or a key for another certificate stops the start. */
function https(e: Env): HttpsConfig | undefined {
  const certFile = e.PALISADE_HTTPS_CERT_FILE;
  const keyFile = e.PALISADE_HTTPS_KEY_FILE;
  if (certFile === undefined && keyFile === undefined) return undefined;
  const bad = (name: string, why: string) => new ConfigError(`invalid configuration:\n  ${name}: ${why}`);
  if (certFile === undefined) throw bad("PALISADE_HTTPS_CERT_FILE", "must be set when PALISADE_HTTPS_KEY_FILE is");
  if (keyFile === undefined) throw bad("PALISADE_HTTPS_KEY_FILE", "must be set when PALISADE_HTTPS_CERT_FILE is");
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch (err) {
      throw bad(name, `cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const certPem = read("PALISADE_HTTPS_CERT_FILE", certFile);
  const keyPem = read("PALISADE_HTTPS_KEY_FILE", keyFile);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw bad("PALISADE_HTTPS_CERT_FILE", `${certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw bad(
      "PALISADE_HTTPS_KEY_FILE",
      `${keyFile} is not a PEM private key (or it is encrypted): ${(err as Error).message}`,
    );
  }
  if (!cert.checkPrivateKey(key))
    throw bad(
      "PALISADE_HTTPS_KEY_FILE",
      `${keyFile} is not the key of the certificate in ${certFile} (the first certificate of the file is the server's)`,
    );
  return { certPem, keyPem, hstsMaxAge: e.PALISADE_HSTS_MAX_AGE };
}

/** Configured names, or this machine's name and loopback (enough for one box and the tests). */
function serverNames(list: string | undefined): string[] {
  const names = (list ?? "")
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  return names.length ? [...new Set(names)] : [...new Set([hostname(), "localhost", "127.0.0.1", "::1"])];
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty variables count as unset, as in most shells' `VAR= cmd` habit.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  const e = parsed.data;
  let retention: Retention;
  try {
    retention = retentionFromEnv(env);
  } catch (err) {
    const text =
      err instanceof z.ZodError
        ? err.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n  ")
        : (err as Error).message;
    throw new ConfigError(`invalid configuration:\n  ${text}`);
  }
  const plaintext = /^(1|true|yes)$/.test(e.PALISADE_GRPC_PLAINTEXT);
  const enrollPort = e.GRPC_ENROLL_PORT ?? (e.GRPC_PORT === 0 ? 0 : e.GRPC_PORT + 1);
  const legacyPort = e.PALISADE_GRPC_LEGACY_PORT;
  if (legacyPort !== undefined) {
    const bad = (why: string) => new ConfigError(`invalid configuration:\n  PALISADE_GRPC_LEGACY_PORT: ${why}`);
    if (plaintext)
      throw bad(
        "is for a mutual TLS API serving hosts enrolled before it; with PALISADE_GRPC_PLAINTEXT the agent port is plaintext already",
      );
    if (legacyPort !== 0 && (legacyPort === e.GRPC_PORT || legacyPort === enrollPort))
      throw bad(`${legacyPort} is also GRPC_PORT or GRPC_ENROLL_PORT; it needs its own port`);
  }
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    host: e.HOST,
    port: e.PORT,
    grpcPort: e.GRPC_PORT,
    adminToken: e.PALISADE_ADMIN_TOKEN,
    initialTokenFile: e.PALISADE_INITIAL_TOKEN_FILE,
    logLevel: e.LOG_LEVEL,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    sseStreamsPerToken: e.SSE_STREAMS_PER_TOKEN,
    bodyLimit: BODY_LIMIT_BYTES,
    bansMaxPerHost: MAX_BANS_PER_HOST,
    agentTls: plaintext
      ? { mode: "plaintext" }
      : {
          mode: "mtls",
          secretKey: secretKey(e),
          enrollPort,
          ...(legacyPort !== undefined ? { legacyPort } : {}),
          serverNames: serverNames(e.PALISADE_TLS_SERVER_NAMES),
          clientCertTtlSeconds: Math.round(e.PALISADE_AGENT_CERT_DAYS * 86_400),
        },
    queue: { prefix: e.PALISADE_QUEUE_PREFIX, lockMs: e.PALISADE_DEPLOY_LOCK_MS },
    retention,
    https: https(e),
    metrics: { token: e.PALISADE_METRICS_TOKEN, cacheMs: Math.round(e.PALISADE_METRICS_CACHE_SECONDS * 1000) },
    trustProxy: e.PALISADE_TRUST_PROXY ?? [],
  };
}
