// What `palisade server` runs beside the REST API (the gRPC server for agents, the BullMQ
// workers) implements this. Kept apart from the list in services.ts so a service can
// name the interface without importing every other service.
import type { FastifyBaseLogger } from "fastify";
import type { Redis } from "ioredis";
import type { Config } from "./config.ts";
import type { Db } from "./db/client.ts";

export interface ServiceContext {
  config: Config;
  db: Db;
  redis: Redis;
  log: FastifyBaseLogger;
}

export interface RunningService {
  stop(): Promise<void>;
}

export interface BackgroundService {
  name: string;
  start(ctx: ServiceContext): Promise<RunningService>;
}
