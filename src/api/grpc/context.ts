// What the agent-facing code needs from the process: the database, the shared Redis
// connection (commands and publishes; subscribers duplicate it) and a pino-shaped logger.
import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";

export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AgentContext {
  db: Db;
  redis: Redis;
  log: Log;
}

/** A logger that drops everything (tests and the bench pass it when logs are noise). */
export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };
