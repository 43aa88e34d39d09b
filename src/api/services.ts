// The services `palisade server` starts after the HTTP server (and stops in reverse order).
import type { BackgroundService } from "./background-service.ts";
import { deployWorkerService } from "./deploy/worker.ts";
import { agentGrpcService } from "./grpc/server.ts";
import { telemetryService } from "./telemetry/service.ts";

export type { BackgroundService, RunningService, ServiceContext } from "./background-service.ts";

/** Add a service: append it here. */
export const backgroundServices: BackgroundService[] = [agentGrpcService, deployWorkerService, telemetryService()];
