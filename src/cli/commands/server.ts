// `palisade server`: migrate, then serve the REST API, the agents' gRPC server and the
// background workers (src/api/services.ts) until SIGINT/SIGTERM.
import type { Command } from "commander";
import { loadConfig } from "../../api/config.ts";

export function register(program: Command): void {
  program
    .command("server")
    .description(
      "apply migrations, then serve the API (config from DATABASE_URL, REDIS_URL, HOST, PORT, GRPC_PORT, PALISADE_ADMIN_TOKEN)",
    )
    .option("--no-migrate", "do not apply migrations at start")
    .action(async (opts: { migrate: boolean }) => {
      // Signal handlers first, before anything is started: a SIGTERM while the server is
      // still starting (listening, services half started) must stop it cleanly, not kill it.
      // A second signal is not caught (`once`), so it still ends a stop that hangs.
      const stopping = new AbortController();
      const stop = () => stopping.abort();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      // Loaded on use: other verbs should not pay for (or depend on) the whole server.
      const { runServer, StartAborted } = await import("../../api/server.ts");
      let server: Awaited<ReturnType<typeof runServer>>;
      try {
        server = await runServer(loadConfig(), { skipMigrate: !opts.migrate, signal: stopping.signal });
      } catch (err) {
        if (err instanceof StartAborted) process.exit(0);
        throw err;
      }
      if (!stopping.signal.aborted)
        await new Promise((resolve) => stopping.signal.addEventListener("abort", resolve, { once: true }));
      await server.close();
      process.exit(0);
    });
}
