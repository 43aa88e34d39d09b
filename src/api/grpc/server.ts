// The agents' gRPC endpoint: Enroll, Connect and Renew on AgentService. Every failure is
// answered with a status on that one call; nothing an agent sends can take the process
// down. Oversized messages are refused by grpc-js itself (RESOURCE_EXHAUSTED) before decoding.
//
// With mutual TLS (docs/security.md, "Transport") there are two listeners: the agent port
// requires a client certificate from the CA in the TLS handshake and serves Connect and
// Renew; the enrollment port is TLS without client certificates (an agent has none yet)
// and serves Enroll only. In plaintext mode (a lab) one port serves Enroll and Connect.
// In transition (mutual TLS plus `legacyAddress`) a third, plaintext listener serves the
// hosts enrolled before mutual TLS: Connect with their bearer credential, and Upgrade, which
// trades that credential for a certificate in place (upgrade.ts).
import * as grpc from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import type { BackgroundService } from "../background-service.ts";
import { AgentBus } from "../host-bus.ts";
import type { AgentContext } from "./context.ts";
import { enrollAgent } from "./enroll.ts";
import { upgradeAgent } from "./upgrade.ts";
import { toStatus } from "./errors.ts";
import { authenticateAgent, authenticatePeer, normaliseSerial } from "./identity.ts";
import { recordAudit } from "../audit.ts";
import { CaError, checkSecretKey, ensureCa, type AgentCa } from "../tls/ca.ts";
import { AgentRpcError } from "./errors.ts";
import {
  agentServiceDefinition,
  MAX_MESSAGE_BYTES,
  type AgentServiceHandlers,
  type EnrollRequest,
  type EnrollResponse,
  type RenewRequest,
  type RenewResponse,
  type UpgradeRequest,
  type UpgradeResponse,
} from "../../protocol/agent.ts";
import { AgentSession, type AgentCall } from "./session.ts";

export interface AgentServerOptions {
  /** host:port to listen on ("127.0.0.1:0" picks a free port). */
  address: string;
  /** How often live streams refresh last_seen_at and stale hosts are swept (ms). */
  sweepIntervalMs?: number;
  /** Mutual TLS; absent = plaintext (tests and labs; `palisade server` needs PALISADE_GRPC_PLAINTEXT=1 for it). */
  tls?: AgentServerTls;
}

export interface AgentServerTls {
  ca: AgentCa;
  /** host:port of the enrollment listener ("127.0.0.1:0" picks a free port). */
  enrollAddress: string;
  /** Names (DNS or IP) in this replica's server certificate. */
  serverNames: string[];
  clientCertTtlSeconds: number;
  /**
   * Renewals one host may make per hour (across replicas, counted in Redis). An agent renews
   * once per two thirds of a lifetime of at least a day; the cap bounds what a stolen
   * certificate can make the CA sign. Default RENEWS_PER_HOUR.
   */
  renewsPerHour?: number;
  /**
   * Transition: host:port of a plaintext listener for hosts enrolled before mutual TLS
   * (Connect with the bearer credential, Upgrade). Absent: none (the default).
   */
  legacyAddress?: string;
}

export interface RunningAgentServer {
  port: number;
  /** The enrollment listener's port (mutual TLS only). */
  enrollPort: number | undefined;
  /** The legacy plaintext listener's port (transition only). */
  legacyPort: number | undefined;
  /** Streams open on this replica right now. */
  sessions(): ReadonlySet<AgentSession>;
  stop(): Promise<void>;
}

/** A host whose replica died keeps `connected` until this long without news. */
const STALE_AFTER_S = 90;

export const RENEWS_PER_HOUR = 12;

/** One more renewal of `hostId` this hour, or rate_limited. Redis down: allowed (renewals are rare; readyz shows the outage). */
async function countRenewal(ctx: AgentContext, hostId: string, perHour: number): Promise<void> {
  const key = `palisade:renew:${hostId}`;
  let n: number;
  try {
    const [[, count]] = (await ctx.redis.multi().incr(key).expire(key, 3600, "NX").exec()) as [[Error | null, number]];
    n = count;
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message, hostId }, "renewal not counted (Redis unavailable)");
    return;
  }
  if (n > perHour)
    throw new AgentRpcError(
      "rate_limited",
      `this host renewed its certificate ${perHour} times within the hour; try again later (an agent renews once per two thirds of its certificate's life)`,
    );
}

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

  const tls = opts.tls;
  const refuse = <T>(callback: grpc.sendUnaryData<T>, why: AgentRpcError) => callback(toStatus(why));
  const enroll: grpc.handleUnaryCall<EnrollRequest, EnrollResponse> = (call, callback) => {
    const req = call.request;
    const input = { token: req.token, name: req.name, capabilities: req.capabilities, csr: req.csr || undefined };
    enrollAgent(ctx, input, tls && { ca: tls.ca, clientCertTtlSeconds: tls.clientCertTtlSeconds })
      .then((r) => callback(null, r))
      .catch((err: unknown) => {
        const status = toStatus(err);
        if (status.code === grpc.status.INTERNAL) ctx.log.error({ err }, "enroll failed");
        else ctx.log.warn({ reason: status.details }, "enroll refused");
        callback(status);
      });
  };
  const peer = (call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null }) =>
    call.getAuthContext()?.sslPeerCertificate;
  const connectWith = (mutual: boolean) => (call: AgentCall) => {
    (mutual ? authenticatePeer(ctx.db, peer(call), call.metadata, ctx.log) : authenticateAgent(ctx.db, call.metadata))
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
  };
  const connect = connectWith(tls !== undefined);
  const renew: grpc.handleUnaryCall<RenewRequest, RenewResponse> = (call, callback) => {
    if (!tls)
      return refuse(
        callback,
        new AgentRpcError(
          "wrong_listener",
          "this API runs without TLS (PALISADE_GRPC_PLAINTEXT): there is no certificate to renew",
        ),
      );
    authenticatePeer(ctx.db, peer(call), call.metadata, ctx.log)
      .then(async (identity) => {
        await countRenewal(ctx, identity.hostId, tls.renewsPerHour ?? RENEWS_PER_HOUR);
        const cert = await tls.ca
          .issueClient(call.request.csr, identity.hostId, tls.clientCertTtlSeconds)
          .catch((e: unknown) => {
            throw e instanceof CaError ? new AgentRpcError("invalid_csr", e.message) : e;
          });
        // Renewing with the current certificate retires it (kept as previous until the new
        // one is first seen); renewing again with the previous one (the answer was lost)
        // replaces the unseen new one and keeps the previous.
        const presentedSerial = normaliseSerial(peer(call)!.serialNumber);
        await ctx.db.$transaction(async (tx) => {
          await tx.host.update({
            where: { id: identity.hostId },
            data: {
              certSerial: cert.serial,
              certExpiresAt: cert.notAfter,
              ...(identity.presented === "current" ? { certSerialPrev: presentedSerial } : {}),
            },
          });
          await recordAudit(
            tx,
            { name: `agent:${identity.hostName}`, tokenId: null },
            "host.cert_renew",
            `host:${identity.hostName}`,
            { id: identity.hostId, certSerial: cert.serial, replaced: presentedSerial },
          );
        });
        ctx.log.info(
          {
            hostId: identity.hostId,
            host: identity.hostName,
            certSerial: cert.serial,
            notAfter: cert.notAfter.toISOString(),
          },
          "agent certificate renewed",
        );
        callback(null, { certificate: cert.certPem });
      })
      .catch((err: unknown) => {
        const status = toStatus(err);
        if (status.code === grpc.status.INTERNAL) ctx.log.error({ err }, "renew failed");
        else ctx.log.warn({ reason: status.details }, "renew refused");
        callback(status);
      });
  };
  const notHere = (what: string) => new AgentRpcError("wrong_listener", what);
  const upgradeElsewhere = (callback: grpc.sendUnaryData<UpgradeResponse>) =>
    refuse(
      callback,
      notHere(
        tls
          ? "upgrade on the legacy plaintext port (PALISADE_GRPC_LEGACY_PORT) with the bearer credential; this port is already mutual TLS"
          : "this API runs without TLS (PALISADE_GRPC_PLAINTEXT): there is no certificate to upgrade to",
      ),
    );

  const handlers: AgentServiceHandlers = tls
    ? {
        Enroll: (_call, callback) =>
          refuse(callback, notHere("enroll on the enrollment port (GRPC_ENROLL_PORT), not the agent port")),
        Connect: connect,
        Renew: renew,
        Upgrade: (_call, callback) => upgradeElsewhere(callback),
      }
    : { Enroll: enroll, Connect: connect, Renew: renew, Upgrade: (_call, callback) => upgradeElsewhere(callback) };
  server.addService(agentServiceDefinition, handlers);

  let enrollServer: grpc.Server | undefined;
  let enrollPort: number | undefined;
  let credentials = grpc.ServerCredentials.createInsecure();
  if (tls) {
    const issued = await tls.ca.issueServer(tls.serverNames);
    // The chain includes the CA so an enrolling agent can match it against its pin.
    const pair = {
      private_key: Buffer.from(issued.keyPem),
      cert_chain: Buffer.from(`${issued.certPem.trim()}\n${tls.ca.certPem.trim()}\n`),
    };
    credentials = grpc.ServerCredentials.createSsl(Buffer.from(tls.ca.certPem), [pair], true);
    enrollServer = new grpc.Server({
      "grpc.max_receive_message_length": 256 * 1024,
      "grpc.max_send_message_length": 256 * 1024,
    });
    const enrollHandlers: AgentServiceHandlers = {
      Enroll: enroll,
      Connect: (call) =>
        call.emit(
          "error",
          toStatus(
            notHere(
              "this is the enrollment port: connect to the agent port (GRPC_PORT) with the certificate from enrollment",
            ),
          ),
        ),
      Renew: (_call, callback) =>
        refuse(callback, notHere("renew on the agent port (GRPC_PORT) with the current certificate")),
      Upgrade: (_call, callback) => upgradeElsewhere(callback),
    };
    enrollServer.addService(agentServiceDefinition, enrollHandlers);
    const enrollCreds = grpc.ServerCredentials.createSsl(null, [pair], false);
    const srv = enrollServer;
    enrollPort = await new Promise<number>((resolve, reject) =>
      srv.bindAsync(tls.enrollAddress, enrollCreds, (err, p) => (err ? reject(err) : resolve(p))),
    );
  }

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.address, credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );

  let legacyServer: grpc.Server | undefined;
  let legacyPort: number | undefined;
  if (tls?.legacyAddress) {
    const upgradeTls = { ca: tls.ca, clientCertTtlSeconds: tls.clientCertTtlSeconds, agentPort: port };
    const upgrade: grpc.handleUnaryCall<UpgradeRequest, UpgradeResponse> = (call, callback) => {
      authenticateAgent(ctx.db, call.metadata)
        .then((identity) => upgradeAgent(ctx, identity, call.request, upgradeTls))
        .then((r) => callback(null, r))
        .catch((err: unknown) => {
          const status = toStatus(err);
          if (status.code === grpc.status.INTERNAL) ctx.log.error({ err }, "upgrade failed");
          else ctx.log.warn({ reason: status.details }, "upgrade refused");
          callback(status);
        });
    };
    legacyServer = new grpc.Server({
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      "grpc.keepalive_time_ms": 20_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.keepalive_permit_without_calls": 1,
    });
    legacyServer.addService(agentServiceDefinition, {
      Enroll: (_call, callback) =>
        refuse(
          callback,
          notHere("new hosts enroll on the enrollment port (GRPC_ENROLL_PORT) with a token that pins the CA"),
        ),
      Connect: connectWith(false),
      Renew: (_call, callback) =>
        refuse(callback, notHere("renew on the agent port (GRPC_PORT) with the current certificate")),
      Upgrade: upgrade,
    } satisfies AgentServiceHandlers);
    const srv = legacyServer;
    const legacyAddress = tls.legacyAddress;
    legacyPort = await new Promise<number>((resolve, reject) =>
      srv.bindAsync(legacyAddress, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  }

  const sweep = async () => {
    const ids = [...sessions].map((s) => s.id);
    if (ids.length)
      await ctx.db.host.updateMany({ where: { sessionId: { in: ids } }, data: { lastSeenAt: new Date() } });
    // Backstop for a revocation whose Redis notice was lost: streams of hosts that are
    // now disabled or deleted end at the next sweep.
    // Only the streams the query asked about: one that opened while it ran is not in its
    // answer and would be taken for a deleted host (a 500-agent bench lost agents so).
    const asked = [...sessions];
    if (asked.length) {
      const hostIds = [...new Set(asked.map((s) => s.identity.hostId))];
      const rows = await ctx.db.host.findMany({ where: { id: { in: hostIds } }, select: { id: true, disabled: true } });
      const state = new Map(rows.map((r) => [r.id, r.disabled]));
      for (const s of asked) {
        const disabled = state.get(s.identity.hostId);
        if (disabled !== false) await s.revoke(disabled === undefined ? "deleted" : "disabled");
      }
    }
    const n = await ctx.db.$executeRaw`
      UPDATE hosts SET connection = 'disconnected', session_id = NULL, updated_at = now()
       WHERE connection = 'connected' AND last_seen_at < now() - make_interval(secs => ${STALE_AFTER_S})`;
    if (n > 0) ctx.log.warn({ hosts: n }, "marked hosts disconnected whose replica stopped answering for them");
  };
  const timer = setInterval(
    () => void sweep().catch((err: Error) => ctx.log.warn({ err: err.message }, "host sweep failed")),
    opts.sweepIntervalMs ?? 30_000,
  );
  timer.unref();
  if (tls)
    ctx.log.info(
      { address: opts.address, port, enrollPort, caFingerprint: tls.ca.fingerprint, serverNames: tls.serverNames },
      "agent gRPC server listening (mutual TLS)",
    );
  if (legacyPort !== undefined)
    ctx.log.warn(
      { address: tls?.legacyAddress, legacyPort },
      "agent gRPC legacy port listening WITHOUT TLS (PALISADE_GRPC_LEGACY_PORT) for hosts enrolled before mutual TLS: their bearer credentials and rulesets cross the network in clear; upgrade them (POST /v1/hosts/:id/tls-upgrade) and unset it",
    );
  if (!tls)
    ctx.log.warn(
      { address: opts.address, port },
      "agent gRPC server listening WITHOUT TLS (PALISADE_GRPC_PLAINTEXT): credentials and rulesets cross the network in clear; use only in a lab",
    );

  return {
    port,
    enrollPort,
    legacyPort,
    sessions: () => sessions,
    async stop() {
      clearInterval(timer);
      // Mark our hosts disconnected first; their agents reconnect to another replica.
      await Promise.all([...sessions].map((s) => s.terminate(grpc.status.UNAVAILABLE, "API replica shutting down")));
      const shutdown = (srv: grpc.Server) =>
        new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            srv.forceShutdown();
            resolve();
          }, 3_000);
          srv.tryShutdown(() => {
            clearTimeout(t);
            resolve();
          });
        });
      await Promise.all([
        shutdown(server),
        ...[enrollServer, legacyServer].filter((x) => x !== undefined).map(shutdown),
      ]);
      await bus.stop();
    },
  };
}

/** Registered in ../services.ts: serves agents on GRPC_PORT beside the REST API. */
export const agentGrpcService: BackgroundService = {
  name: "agent-grpc",
  async start({ config, db, redis, log }) {
    const host = config.host.includes(":") ? `[${config.host}]` : config.host;
    const t = config.agentTls;
    const tls: AgentServerTls | undefined =
      t.mode === "mtls"
        ? {
            ca: await ensureCa(db, checkSecretKey(t.secretKey)),
            enrollAddress: `${host}:${t.enrollPort}`,
            serverNames: t.serverNames,
            clientCertTtlSeconds: t.clientCertTtlSeconds,
            ...(t.legacyPort !== undefined ? { legacyAddress: `${host}:${t.legacyPort}` } : {}),
          }
        : undefined;
    const running = await startAgentServer(
      { db, redis, log },
      { address: `${host}:${config.grpcPort}`, ...(tls ? { tls } : {}) },
    );
    return { stop: () => running.stop() };
  },
};
