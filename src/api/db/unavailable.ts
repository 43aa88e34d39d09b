// "PostgreSQL does not answer" as opposed to "this query is wrong": the first is a 503 the
// client can retry (with Retry-After), the second stays a 500. Prisma reports connection
// trouble as P1xxx codes (and P2024, pool timeout) with the driver adapter's cause kind
// alongside; raw node-postgres errors (COPY ingest) carry socket errnos or SQLSTATE 08/57P.
const PRISMA_CODES = new Set(["P1001", "P1002", "P1003", "P1008", "P1010", "P1011", "P1017", "P2024"]);
const ADAPTER_KINDS = new Set([
  "DatabaseNotReachable",
  "DatabaseDoesNotExist",
  "DatabaseAccessDenied",
  "ConnectionClosed",
  "SocketTimeout",
  "TooManyConnections",
  "TlsConnectionError",
]);
const ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "EAI_AGAIN"]);

export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== "object" || depth > 4) return false;
  const e = err as {
    name?: string;
    code?: unknown;
    meta?: { driverAdapterError?: { cause?: { kind?: string; originalCode?: string } } };
    cause?: unknown;
    message?: string;
  };
  if (e.name === "PrismaClientInitializationError") return true;
  if (typeof e.code === "string") {
    if (PRISMA_CODES.has(e.code) || ERRNOS.has(e.code)) return true;
    // SQLSTATE class 08 (connection exception), 57P01-03 (shutdown), 3D000 (no such database).
    if (/^08...$|^57P0[123]$|^3D000$/.test(e.code)) return true;
  }
  const cause = e.meta?.driverAdapterError?.cause;
  if (cause?.kind && ADAPTER_KINDS.has(cause.kind)) return true;
  if (cause?.originalCode && /^08...$|^57P0[123]$|^3D000$/.test(cause.originalCode)) return true;
  if (/Connection terminated|connection is closed|Client has encountered a connection error/i.test(e.message ?? ""))
    return true;
  return isDatabaseUnavailable(e.cause, depth + 1);
}
