// JSON log lines: one object per line with time, level, msg and the caller's fields.
// Fields come last so they can never overwrite time/level/msg.

export const LEVELS = ["debug", "info", "warn", "error"] as const;
export type Level = (typeof LEVELS)[number];

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
}

function jsonSafe(_k: string, v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Error) return { name: v.name, message: v.message, code: (v as { code?: unknown }).code };
  return v;
}

export function createLogger(
  level: Level = "info",
  write: (line: string) => void = (l) => process.stderr.write(l),
  base: Record<string, unknown> = {},
): Logger {
  const min = LEVELS.indexOf(level);
  const emit = (lv: Level, msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS.indexOf(lv) < min) return;
    const rest = { ...base, ...fields };
    const line = { time: new Date().toISOString(), level: lv, msg, ...(Object.keys(rest).length > 0 ? { fields: rest } : {}) };
    write(JSON.stringify(line, jsonSafe) + "\n");
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (f) => createLogger(level, write, { ...base, ...f }),
  };
}

/** For tests: a logger that keeps its lines. */
export function memoryLogger(level: Level = "debug"): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const l = createLogger(level, (s) => lines.push(JSON.parse(s) as Record<string, unknown>));
  return Object.assign(l, { lines });
}
