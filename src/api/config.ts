// Configuration comes from the environment only (README, "Configuration"), parsed once with zod so a bad
// value stops the process with a message naming the variable.
import { z } from "zod";

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
});

export type Env = z.infer<typeof EnvSchema>;

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
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

export const BODY_LIMIT_BYTES = 5 * 1024 * 1024;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty variables count as unset, as in most shells' `VAR= cmd` habit.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  const e = parsed.data;
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
  };
}
