// One JSON line per event on stdout, in the shape pino writes, for CLI verbs that run
// without the Fastify logger.
const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;

export function jsonLog(level: keyof typeof LEVELS, msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ level: LEVELS[level], time: Date.now(), ...fields, msg }) + "\n");
}
