// One log format for the server, the agent and the CLI: pino's JSON lines. Each line holds
// level (numeric: 20 debug, 30 info, 40 warn, 50 error), time (ms since the epoch), pid,
// hostname, msg and the caller's fields at the top level; calls are `(fields, msg)`. The
// server's Fastify logger is pino with these defaults; the agent and the CLI make theirs here.
import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger };

/** The levels the agent's and the CLI's settings accept. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A logger writing to `dest`: a file descriptor (2 = stderr, written synchronously, so the
 * lines before an exit are not lost) or a stream.
 */
export function createLog(level: LogLevel, dest: number | DestinationStream = 2): Logger {
  return pino({ level }, typeof dest === "number" ? pino.destination({ dest, sync: true }) : dest);
}

/** For tests: a logger that keeps its lines, parsed. */
export function memoryLog(level: LogLevel = "debug"): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLog(level, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return Object.assign(log, { lines });
}

/** pino's numeric level of a name (tests and readers of the JSON lines compare these). */
export const levelNumber = (l: LogLevel): number => pino.levels.values[l]!;
