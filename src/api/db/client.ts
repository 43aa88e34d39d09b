// One PrismaClient per process, over node-postgres via the driver adapter (Prisma 7). The
// node-postgres pool is ours and shared: telemetry ingest takes a client from it for COPY
// (which Prisma cannot do) and the adapter uses it for everything else.
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../../generated/prisma/client.ts";
import { conflict } from "../errors.ts";

export type Db = PrismaClient;
export { Prisma } from "../../generated/prisma/client.ts";

const pools = new WeakMap<Db, pg.Pool>();

/** The node-postgres pool under a Db made by createDb (for COPY). */
export function poolOf(db: Db): pg.Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error("this Db was not made by createDb: no node-postgres pool for COPY");
  return pool;
}

export function createDb(databaseUrl: string): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl });
  // An idle client whose server connection ends (restart, terminated backend) is dropped
  // from the pool and replaced on the next checkout; without a listener it would crash
  // the process.
  pool.on("error", () => {});
  const db = new PrismaClient({
    // disposeExternalPool: $disconnect ends the pool, as it did when the adapter owned it.
    adapter: new PrismaPg(pool, { disposeExternalPool: true }),
    // Version creation serialises on a row lock; bursts of concurrent writers must
    // queue for a connection rather than fail after Prisma's 2 s default.
    transactionOptions: { maxWait: 10_000, timeout: 15_000 },
  });
  pools.set(db, pool);
  return db;
}

/** True when err is Prisma's unique-constraint violation (P2002). */
export function isUniqueViolation(err: unknown): boolean {
  return (
    (err as { code?: unknown; name?: unknown })?.name === "PrismaClientKnownRequestError" &&
    (err as { code: unknown }).code === "P2002"
  );
}

/** `.catch()` handler: a unique violation on `field` becomes 409 with `message`; anything else is rethrown. */
export const conflictOnUnique =
  (message: string, field = "name") =>
  (err: unknown): never => {
    if (isUniqueViolation(err))
      throw conflict(message, [{ path: `/${field}`, code: "taken", message: `${field} must be unique` }]);
    throw err;
  };
