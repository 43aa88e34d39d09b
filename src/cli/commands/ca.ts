// `palisade ca init`: create the agents' CA before the first server start (the server also
// creates it when missing) and print its SHA-256, which every enrollment token pins.
import type { Command } from "commander";
import { ConfigError, loadConfig } from "../../api/config.ts";
import { createDb } from "../../api/db/client.ts";
import { migrate } from "../../api/db/migrate.ts";
import { caFingerprint, checkSecretKey, ensureCa } from "../../api/tls/ca.ts";
import { cliLog } from "../log.ts";

export function register(program: Command): void {
  const ca = program
    .command("ca")
    .description("the agents' CA: init (create it before the first server start; prints its SHA-256)");
  ca.command("init")
    .description(
      "create the CA in the database if there is none (DATABASE_URL, PALISADE_SECRET_KEY), migrating first; print its SHA-256",
    )
    .action(async () => {
      const config = loadConfig();
      if (config.agentTls.mode !== "mtls")
        throw new ConfigError("PALISADE_GRPC_PLAINTEXT is set: the agent channel uses no CA");
      const secret = checkSecretKey(config.agentTls.secretKey);
      await migrate(config.databaseUrl);
      const db = createDb(config.databaseUrl);
      try {
        const existed = (await caFingerprint(db)) !== undefined;
        const c = await ensureCa(db, secret);
        cliLog().info({ caFingerprint: c.fingerprint }, existed ? "agent CA exists" : "agent CA created");
      } finally {
        await db.$disconnect();
      }
    });
}
