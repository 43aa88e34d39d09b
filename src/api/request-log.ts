// Fastify's per-request log lines ("incoming request", "request completed") stay at info,
// except for the health and readiness probes: an orchestrator polls them every few
// seconds, and two info lines per poll would bury the log. Their lines go to debug (a
// failing readiness check still logs its warning, routes/health.ts).
import { LogController, type FastifyReply, type FastifyRequest } from "fastify";

const PROBES = new Set(["/healthz", "/readyz"]);

const isProbe = (req: FastifyRequest) => PROBES.has(req.routeOptions.url ?? "");

export class RequestLog extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (!isProbe(request)) return super.incomingRequest(request, reply, metadata);
    if (!this.isLogDisabled(request)) request.log.debug({ req: request }, "incoming request");
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
    metadata?: Record<string, unknown>,
  ): void {
    if (error || !isProbe(request)) return super.requestCompleted(error, request, reply, metadata);
    if (!this.isLogDisabled(request))
      reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, "request completed");
  }
}
