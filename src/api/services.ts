// The seam for what `palisade server` runs beside the REST API: the gRPC server for
// agents and the BullMQ workers come in later issues. Each registers a BackgroundService
// here; server.ts starts them after the HTTP server and stops them in reverse order.
import type { FastifyBaseLogger } from "fastify";
import type { Redis } from "ioredis";
import type { Config } from "./config.ts";
import type { Db } from "./db/client.ts";
import { deployWorkerService } from "./deploy/worker.ts";
import { agentGrpcService } from "./grpc/server.ts";
import { telemetryService } from "./telemetry/service.ts";

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

/** Add a service: append it here (e.g. the gRPC agent server, deploy workers). */
export const backgroundServices: BackgroundService[] = [agentGrpcService, deployWorkerService, telemetryService()];
