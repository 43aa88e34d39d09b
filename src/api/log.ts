// The logger shape the API's modules take: pino's (`(obj, msg)`). A neutral module, so
// the domain (deploy, telemetry) and the transport (grpc, routes) share it without
// importing each other.
export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A logger that drops everything (tests and the bench pass it when logs are noise). */
export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };
