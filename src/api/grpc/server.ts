// The agents' gRPC endpoint: Enroll and Connect on AgentService. Every failure is answered
// with a status on that one call; nothing an agent sends can take the process down.
// Oversized messages are refused by grpc-js itself (RESOURCE_EXHAUSTED) before decoding.
import * as grpc from "@grpc/grpc-js";
import type { BackgroundService } from "../background-service.ts";
import { AgentBus } from "./bus.ts";
import type { AgentContext } from "./context.ts";
import { enrollAgent } from "./enroll.ts";
import { toStatus } from "./errors.ts";
import { authenticateAgent } from "./identity.ts";
import { agentService, MAX_MESSAGE_BYTES } from "./proto.ts";
import { AgentSession, type AgentCall } from "./session.ts";

export interface AgentServerOptions {
  /** host:port to listen on ("127.0.0.1:0" picks a free port). */
  address: string;
  /** How often live streams refresh last_seen_at and stale hosts are swept (ms). */
  sweepIntervalMs?: number;
}

export interface RunningAgentServer {
  port: number;
  /** Streams open on this replica right now. */
  sessions(): ReadonlySet<AgentSession>;
  stop(): Promise<void>;
}

/** A host whose replica died keeps `connected` until this long without news. */
const STALE_AFTER_S = 90;

export async function startAgentServer(ctx: AgentContext, opts: AgentServerOptions): Promise<RunningAgentServer> {
  const bus = await AgentBus.start(ctx.redis, ctx.log);
  const sessions = new Set<AgentSession>();
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    // Ping idle streams so a host that vanished (or firewalled itself off) is noticed.
    "grpc.keepalive_time_ms": 20_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
  });

  const handlers: grpc.UntypedServiceImplementation = {
    Enroll: (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const req = call.request ?? {};
      enrollAgent(ctx, { token: String(req.token ?? ""), name: String(req.name ?? ""), capabilities: req.capabilities ?? undefined })
        .then((r) => callback(null, r))
        .catch((err: unknown) => {
          const status = toStatus(err);
          if (status.code === grpc.status.INTERNAL) ctx.log.error({ err }, "enroll failed");
          else ctx.log.warn({ reason: status.details }, "enroll refused");
          callback(status);
        });
    },
    Connect: (call: AgentCall) => {
      authenticateAgent(ctx.db, call.metadata)
        .then((identity) => {
          const session = new AgentSession(ctx, bus, call, identity, (s) => sessions.delete(s));
          sessions.add(session);
          session.start();
        })
        .catch((err: unknown) => {
          const status = toStatus(err);
          ctx.log.warn({ reason: status.details }, "agent stream refused");
          call.emit("error", status);
        });
    },
  };
  server.addService(agentService().service, handlers);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );

  const sweep = async () => {
    const ids = [...sessions].map((s) => s.id);
    if (ids.length) await ctx.db.host.updateMany({ where: { sessionId: { in: ids } }, data: { lastSeenAt: new Date() } });
    // Backstop for a revocation whose Redis notice was lost: streams of hosts that are
    // now disabled or deleted end at the next sweep.
    if (sessions.size) {
      const hostIds = [...new Set([...sessions].map((s) => s.identity.hostId))];
      const rows = await ctx.db.host.findMany({ where: { id: { in: hostIds } }, select: { id: true, disabled: true } });
      const state = new Map(rows.map((r) => [r.id, r.disabled]));
      for (const s of [...sessions]) {
        const disabled = state.get(s.identity.hostId);
        if (disabled !== false) await s.revoke(disabled === undefined ? "deleted" : "disabled");
      }
    }
    const n = await ctx.db.$executeRaw`
      UPDATE hosts SET connection = 'disconnected', session_id = NULL, updated_at = now()
       WHERE connection = 'connected' AND last_seen_at < now() - make_interval(secs => ${STALE_AFTER_S})`;
    if (n > 0) ctx.log.warn({ hosts: n }, "marked hosts disconnected whose replica stopped answering for them");
  };
  const timer = setInterval(() => void sweep().catch((err: Error) => ctx.log.warn({ err: err.message }, "host sweep failed")), opts.sweepIntervalMs ?? 30_000);
  timer.unref();
  ctx.log.info({ address: opts.address, port }, "agent gRPC server listening");

  return {
    port,
    sessions: () => sessions,
    async stop() {
      clearInterval(timer);
      // Mark our hosts disconnected first; their agents reconnect to another replica.
      await Promise.all([...sessions].map((s) => s.terminate(grpc.status.UNAVAILABLE, "API replica shutting down")));
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 3_000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      await bus.stop();
    },
  };
}

/** Registered in ../services.ts: serves agents on GRPC_PORT beside the REST API. */
export const agentGrpcService: BackgroundService = {
  name: "agent-grpc",
  async start({ config, db, redis, log }) {
    const host = config.host.includes(":") ? `[${config.host}]` : config.host;
    const running = await startAgentServer({ db, redis, log }, { address: `${host}:${config.grpcPort}` });
    return { stop: () => running.stop() };
  },
};
