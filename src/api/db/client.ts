// One PrismaClient per process, over node-postgres via the driver adapter (Prisma 7).
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../../generated/prisma/client.ts";
import { conflict } from "../errors.ts";

export type Db = PrismaClient;
export { Prisma } from "../../generated/prisma/client.ts";

export function createDb(databaseUrl: string): Db {
  return new PrismaClient({
    adapter: new PrismaPg({ connectionString: databaseUrl }),
    // Version creation serialises on a row lock; bursts of concurrent writers must
    // queue for a connection rather than fail after Prisma's 2 s default.
    transactionOptions: { maxWait: 10_000, timeout: 15_000 },
  });
}

/** True when err is Prisma's unique-constraint violation (P2002). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown; name?: unknown })?.name === "PrismaClientKnownRequestError" && (err as { code: unknown }).code === "P2002";
}

/** `.catch()` handler: a unique violation on `field` becomes 409 with `message`; anything else is rethrown. */
export const conflictOnUnique =
  (message: string, field = "name") =>
  (err: unknown): never => {
    if (isUniqueViolation(err)) throw conflict(message, [{ path: `/${field}`, code: "taken", message: `${field} must be unique` }]);
    throw err;
  };
