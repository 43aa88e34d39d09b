// `palisade migrate`: apply pending SQL migrations and exit.
import type { Command } from "commander";
import { loadConfig } from "../../api/config.ts";
import { migrate } from "../../api/db/migrate.ts";
import { cliLog } from "../log.ts";

export function register(program: Command): void {
  program
    .command("migrate")
    .description("apply pending database migrations (DATABASE_URL), creating the database if needed")
    .action(async () => {
      const config = loadConfig();
      const log = cliLog();
      const r = await migrate(config.databaseUrl, { log });
      log.info({ applied: r.applied, alreadyApplied: r.alreadyApplied.length }, "database schema is current");
    });
}
