// `palisade migrate`: apply pending SQL migrations and exit.
import type { Command } from "commander";
import { loadConfig } from "../../api/config.ts";
import { migrate } from "../../api/db/migrate.ts";
import { jsonLog } from "../log.ts";

export function register(program: Command): void {
  program
    .command("migrate")
    .description("apply pending database migrations (DATABASE_URL), creating the database if needed")
    .action(async () => {
      const config = loadConfig();
      const r = await migrate(config.databaseUrl, { log: (msg, fields) => jsonLog("info", msg, fields) });
      jsonLog("info", "database schema is current", { applied: r.applied, alreadyApplied: r.alreadyApplied.length });
    });
}
