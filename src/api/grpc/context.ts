// What the agent-facing code needs from the process: the database, the shared Redis
// connection (commands and publishes; subscribers duplicate it) and a pino-shaped logger.
import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";
import type { Log } from "../log.ts";

export { silentLog, type Log } from "../log.ts";

export interface AgentContext {
  db: Db;
  redis: Redis;
  log: Log;
  /** How often one stream may write its agent's reported spool backlog (default 5 s; tests make it long). */
  spoolWriteResolutionMs?: number;
  /** Fleet bans made from shared trap hits, per list and minute (default TRAP_BANS_PER_MINUTE). */
  trapBansPerMinute?: number;
}
