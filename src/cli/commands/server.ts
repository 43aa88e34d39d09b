// `palisade server`: migrate, then serve the REST API (and, as later issues add them,
// the agents' gRPC server and the deploy workers: see src/api/services.ts).
import type { Command } from "commander";
import { loadConfig } from "../../api/config.ts";

export function register(program: Command): void {
  program
    .command("server")
    .description("apply migrations, then serve the API (config from DATABASE_URL, REDIS_URL, HOST, PORT, GRPC_PORT, PALISADE_ADMIN_TOKEN)")
    .option("--no-migrate", "do not apply migrations at start")
    .action(async (opts: { migrate: boolean }) => {
      // Loaded on use: other verbs should not pay for (or depend on) the whole server.
      const { runServer } = await import("../../api/server.ts");
      const server = await runServer(loadConfig(), { skipMigrate: !opts.migrate });
      const stop = () => {
        void server.close().then(() => process.exit(0));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
