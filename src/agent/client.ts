// The agent's gRPC client: enroll once (credential kept in the state dir, mode 0600),
// then hold one Connect stream. With mutual TLS (the enrollment token pins the API's CA)
// the stream is authenticated by the host's client certificate (tls.json), renewed at two
// thirds of its life over the same channel; without (a lab API) by
// `authorization: Bearer <credential>`.
// On every (re)connect it sends Hello (capabilities, what it believes is applied, the
// telemetry epoch) and lets the caller resend spooled telemetry. Server messages are
// dispatched to handlers. The stream is reopened after any end or error with
// exponential backoff and jitter; a stream that delivered a server message resets it.

import * as grpc from "@grpc/grpc-js";
import { AgentError, errorText } from "./errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { StateDir, Credential, TlsMaterial } from "./state.ts";
import { createPrivateKey } from "node:crypto";
import { newPrivateKeyPem, splitEnrollToken } from "../protocol/pin.ts";
import { createCsr } from "../protocol/csr.ts";
import { checkIssued, clientCredentials, enrollCredentials, fetchPinnedCa, renewalTime, splitHostPort } from "./tls.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import { effectiveServer, upgradeToMutualTls } from "./upgrade.ts";
import {
  AgentServiceClient,
  MAX_MESSAGE_BYTES,
  type AgentMessage,
  type AppliedVersion,
  type BanUpdate,
  type ConditionUpdate,
  type Capabilities,
  type DesiredState,
  type DynamicSetsRequest,
  type GeoIpUpdate,
  type EnrollRequest,
  type EnrollResponse,
  type RenewRequest,
  type RenewResponse,
  type ServerMessage,
} from "../protocol/agent.ts";

export interface ClientHandlers {
  desiredState(m: DesiredState): void;
  confirm(m: { deploymentId: string; targetId: string }): void;
  checkDrift(): void;
  quotaReset(m: { requestId: string; name: string }): void;
  /** Ban list changes (bans.ts); `full` after every Hello. */
  banUpdate?(m: BanUpdate): void;
  /** Operator condition values (conditions.ts); `full` after every Hello. */
  conditionUpdate?(m: ConditionUpdate): void;
  /** Country data for the policy's geoip sets (geoip.ts). */
  geoipUpdate?(m: GeoIpUpdate): void;
  /** Read the policy's dynamic sets, or lift one element (dynamic-sets.ts). */
  dynamicSets?(m: DynamicSetsRequest): void;
  telemetryAck(m: { epoch: string; seq: number }): void;
  /** The API processed the result with this id (outbox.ts drops it). */
  resultAck?(resultId: string): void;
  /** The stream is open and Hello was sent: resend what is spooled. */
  connected(): void;
  /** The stream ended (before a reconnect attempt). */
  disconnected?(): void;
}

export interface ClientOptions {
  server: string;
  /** Plaintext-mode agents only: TLS with the system's roots (a TLS-terminating proxy). */
  tls: boolean;
  /** Where to enroll with a pinned token (default: --server's host, port + 1). */
  enrollServer?: string;
  name: string;
  enrollToken?: string;
  /** A plaintext-enrolled host moves to mutual TLS at start with this (upgrade.ts). */
  tlsUpgradeSecret?: string;
  state: StateDir;
  log: Logger;
  capabilities: () => Promise<Capabilities>;
  hello: () => Promise<{ applied?: AppliedVersion; telemetryEpoch: string; bansHeld?: boolean }>;
  handlers: ClientHandlers;
  backoff?: BackoffOptions;
  heartbeatMs?: number;
  /** The telemetry spool's backlog, reported in every heartbeat. */
  backlog?: () => { batches: number; bytes: number };
  /** Enroll/connect deadline. */
  deadlineMs?: number;
}

type Duplex = grpc.ClientDuplexStream<AgentMessage, ServerMessage>;
interface Unary {
  Enroll: [EnrollRequest, EnrollResponse];
  Renew: [RenewRequest, RenewResponse];
}

function unary<M extends keyof Unary>(
  client: AgentServiceClient,
  method: M,
  req: Unary[M][0],
  deadlineMs: number,
): Promise<Unary[M][1]> {
  type Fn = (
    req: Unary[M][0],
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r?: Unary[M][1]) => void,
  ) => void;
  const fn = (client[method] as unknown as Fn).bind(client);
  return new Promise((resolve, reject) =>
    fn(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, r) =>
      e || !r ? reject(e ?? new Error("empty answer")) : resolve(r),
    ),
  );
}

/** The enrollment listener is the agent port + 1 unless configured otherwise. */
export function defaultEnrollServer(server: string): string {
  const { host, port } = splitHostPort(server);
  return `${host.includes(":") ? `[${host}]` : host}:${port + 1}`;
}

export class AgentClient {
  private client: AgentServiceClient | undefined;
  /** A renewal stored a new certificate: the next stream uses a channel built with it. */
  private clientStale = false;
  private material: TlsMaterial | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private stream: Duplex | undefined;
  private stopped = false;
  private backoff: Backoff;
  private heartbeat: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private hbSeq = 0;
  private credential: Credential | undefined;
  /** Streams opened so far (tests observe reconnects). */
  connects = 0;
  /** Certificates renewed so far (tests). */
  renewals = 0;
  /** The stream moveStream is ending: its end reconnects at once, not after a backoff. */
  private moving: Duplex | undefined;

  constructor(private readonly o: ClientOptions) {
    this.backoff = new Backoff(o.backoff ?? { initialMs: 500, maxMs: 30_000 });
  }

  /** Mutual TLS once enrolled with a pinned token; otherwise plaintext (or system-root TLS). */
  get mutualTls(): boolean {
    return this.material !== undefined;
  }

  /** Where the stream goes: --server, or the mutual TLS port an upgrade from it learned. */
  get server(): string {
    return effectiveServer(this.o.server, this.material);
  }

  /** The client certificate in use (mutual TLS). */
  get certificate(): string | undefined {
    return this.material?.certPem;
  }

  private channel(): AgentServiceClient {
    if (this.client && !this.clientStale) return this.client;
    this.client?.close();
    this.clientStale = false;
    const backoff = this.o.backoff ?? { initialMs: 500, maxMs: 30_000 };
    const creds = this.material
      ? clientCredentials(this.material)
      : this.o.tls
        ? grpc.credentials.createSsl()
        : grpc.credentials.createInsecure();
    this.client = new AgentServiceClient(this.server, creds, {
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      // The channel's own reconnect pace (open() waits for it) follows the agent's backoff.
      "grpc.initial_reconnect_backoff_ms": backoff.initialMs,
      "grpc.max_reconnect_backoff_ms": backoff.maxMs,
    });
    return this.client;
  }

  get connected(): boolean {
    return this.stream !== undefined;
  }

  /** The open stream's remote address (HOST:PORT); undefined without one. */
  get peer(): string | undefined {
    const p = this.stream?.getPeer();
    return p && p !== "unknown" ? p : undefined;
  }

  /** The stored credential, or enroll with the token (and store it). */
  async ensureCredential(): Promise<Credential> {
    const stored = await this.o.state.readCredential();
    if (stored) {
      this.material = await this.o.state.readTls();
      return (this.credential = await this.checkChannel(stored));
    }
    if (!this.o.enrollToken)
      throw new AgentError(
        "enroll_failed",
        "no credential in the state dir and no enrollment token (PALISADE_ENROLL_TOKEN or --enroll-token-file)",
      );
    const { secret, pin } = splitEnrollToken(this.o.enrollToken);
    const caps = await this.o.capabilities();
    const deadlineMs = this.o.deadlineMs ?? 15_000;
    const refused = (e: unknown) =>
      new AgentError("enroll_failed", `enrollment refused: ${(e as grpc.ServiceError)?.details ?? errorText(e)}`, {
        cause: e,
      });
    let res: EnrollResponse;
    let material: TlsMaterial | undefined;
    if (pin) {
      // Trust nothing the network says until the server has shown the pinned CA.
      const enrollServer = this.o.enrollServer ?? defaultEnrollServer(this.o.server);
      const caPem = await fetchPinnedCa(enrollServer, pin, deadlineMs);
      const keyPem = newPrivateKeyPem();
      const csr = await createCsr(createPrivateKey(keyPem), this.o.name);
      const c = new AgentServiceClient(enrollServer, enrollCredentials(caPem), {});
      try {
        res = await unary(c, "Enroll", { token: secret, name: this.o.name, capabilities: caps, csr }, deadlineMs).catch(
          (e) => {
            throw refused(e);
          },
        );
      } finally {
        c.close();
      }
      checkIssued(res.certificate, keyPem, caPem);
      material = { keyPem, certPem: res.certificate, caPem };
      await this.o.state.writeTls(material);
    } else {
      this.o.log.warn(
        "the enrollment token pins no CA: the API runs without TLS (PALISADE_GRPC_PLAINTEXT), so this agent's channel is not protected",
      );
      res = await unary(
        this.channel(),
        "Enroll",
        { token: secret, name: this.o.name, capabilities: caps, csr: "" },
        deadlineMs,
      ).catch((e) => {
        throw refused(e);
      });
    }
    const c: Credential = {
      hostId: res.hostId,
      hostName: res.hostName,
      credential: res.credential,
      channel: material ? "mtls" : "plaintext",
    };
    await this.o.state.writeCredential(c);
    if (material) {
      this.material = material;
      this.clientStale = true;
    }
    this.o.log.info({ hostId: c.hostId, hostName: c.hostName, mutualTls: this.mutualTls }, "enrolled");
    return (this.credential = c);
  }

  /**
   * A host that enrolled with mutual TLS never falls back to its bearer credential over
   * plaintext because tls.json is gone (deleted, lost in a restore): that would hand the
   * credential and the rulesets to anyone on the path. A credential.json from before the
   * channel was recorded gets it recorded now, from whether tls.json is there.
   */
  private async checkChannel(stored: Credential): Promise<Credential> {
    if (stored.channel === "mtls" && !this.material) {
      const dir = this.o.state.dir;
      throw new AgentError(
        "tls_missing",
        `host "${stored.hostName}" (${stored.hostId}) enrolled with mutual TLS, but ${dir}/tls.json (its key and certificate) is missing; ` +
          `refusing to connect without it. Restore tls.json from this host's backup, or re-enroll: delete the host (palisade hosts delete ${stored.hostName}), ` +
          `remove ${dir}/credential.json, and start the agent with a new enrollment token`,
      );
    }
    const channel = this.material ? "mtls" : "plaintext";
    if (stored.channel === channel) return stored;
    // Unrecorded (an older agent wrote it), or a plaintext host that now has a certificate.
    const c: Credential = { ...stored, channel };
    await this.o.state.writeCredential(c);
    return c;
  }

  /**
   * Renew the client certificate at two thirds of its life: a new key, a CSR, the Renew
   * call authenticated by the current (still valid) certificate. The stream then moves to the
   * new certificate (moveStream). Failures retry at a tenth of the time left.
   */
  private scheduleRenewal(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.stopped || !this.material) return;
    const { at } = renewalTime(this.material.certPem);
    this.renewTimer = setTimeout(() => void this.renew(), Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
  }

  async renew(): Promise<void> {
    const m = this.material;
    if (this.stopped || !m) return;
    try {
      const keyPem = newPrivateKeyPem();
      const csr = await createCsr(createPrivateKey(keyPem), this.credential?.hostName ?? this.o.name);
      // Its own short channel with the current certificate: the stream's channel may still
      // carry an older one (it is rebuilt only between streams).
      const c = new AgentServiceClient(this.server, clientCredentials(m), {});
      const res = await unary(c, "Renew", { csr }, this.o.deadlineMs ?? 15_000)
        .catch((e) => {
          throw new AgentError(
            "renew_failed",
            `certificate renewal refused: ${(e as grpc.ServiceError)?.details ?? errorText(e)}`,
            { cause: e },
          );
        })
        .finally(() => c.close());
      checkIssued(res.certificate, keyPem, m.caPem);
      const next = { ...m, keyPem, certPem: res.certificate };
      await this.o.state.writeTls(next);
      this.material = next;
      this.clientStale = true;
      this.renewals++;
      this.o.log.info(
        { validUntil: new Date(renewalTime(next.certPem).notAfter).toISOString() },
        "client certificate renewed",
      );
      this.scheduleRenewal();
      this.moveStream();
    } catch (e) {
      const left = renewalTime(m.certPem).notAfter - Date.now();
      const delay = Math.min(3_600_000, Math.max(1_000, left / 10));
      this.o.log.warn({ err: errorText(e), delayMs: delay, expiresInMs: left }, "certificate renewal failed; retrying");
      if (!this.stopped) this.renewTimer = setTimeout(() => void this.renew(), delay);
    }
  }

  /**
   * After a renewal the open stream still runs on the TLS session of the old certificate
   * (TLS checks a certificate once, at the handshake): it would outlive that certificate's
   * expiry, and the API would go on seeing the serial it retired. So the stream is ended
   * cleanly (half-close; the API ends its side) and reopened at once, without backoff, on a
   * channel built with the new certificate. Nothing in the kernel changes: the Hello reports
   * the applied version, unacked results and telemetry batches go again and the API
   * ignores what it already has (docs/security.md, "Renewal").
   */
  private moveStream(): void {
    const s = this.stream;
    if (this.stopped || !s) return;
    this.moving = s;
    this.o.log.info("moving the stream to the renewed certificate");
    try {
      s.end();
    } catch {
      s.cancel();
    }
    // An API that never ends its side: cancel (bounded).
    const t = setTimeout(() => {
      if (this.stream === s) s.cancel();
    }, 5_000);
    t.unref();
  }

  /**
   * Move this plaintext-enrolled host to mutual TLS (upgrade.ts), then move the open stream
   * to the certificate at once, as after a renewal: the firewall is not touched, the Hello
   * reports the applied version and unacked results and telemetry go again on the new stream.
   * On failure nothing is stored and the agent stays on its bearer credential.
   */
  async upgradeTls(secret: string): Promise<void> {
    const credential = this.credential ?? (await this.ensureCredential());
    const up = await upgradeToMutualTls({
      server: this.o.server,
      tls: this.o.tls,
      state: this.o.state,
      credential,
      secret,
      deadlineMs: this.o.deadlineMs ?? 15_000,
    });
    this.material = up.material;
    this.credential = up.credential;
    this.clientStale = true;
    this.o.log.info(
      { hostId: credential.hostId, server: this.server, legacyServer: this.o.server },
      "upgraded to mutual TLS; moving the stream to the certificate",
    );
    this.scheduleRenewal();
    this.moveStream();
  }

  /** Enroll if needed, then keep a stream open until stop(). */
  async start(): Promise<void> {
    const c = await this.ensureCredential();
    if (this.o.tlsUpgradeSecret) {
      if (c.channel === "mtls")
        this.o.log.info("on mutual TLS already: PALISADE_TLS_UPGRADE_SECRET(_FILE) is not needed any more");
      // A failed upgrade leaves the agent as it was: it runs on its bearer credential.
      else
        await this.upgradeTls(this.o.tlsUpgradeSecret).catch((e: unknown) =>
          this.o.log.error({ err: errorText(e) }, "upgrade to mutual TLS failed; staying on the plaintext credential"),
        );
    }
    this.scheduleRenewal();
    this.open();
  }

  send(msg: AgentMessage): boolean {
    if (!this.stream) return false;
    try {
      this.stream.write(msg);
      return true;
    } catch (e) {
      this.o.log.warn({ err: errorText(e) }, "stream write failed");
      return false;
    }
  }

  /**
   * Open the stream once the channel is READY. A stream opened on a channel that is still
   * connecting accepts writes that are then lost when the call fails: results sent in that
   * window would count as sent (see outbox.ts), so no stream exists until then.
   */
  private open(): void {
    if (this.stopped || !this.credential) return;
    this.channel().waitForReady(Date.now() + (this.o.deadlineMs ?? 15_000), (e) => {
      if (this.stopped) return;
      if (!e) return this.openStream();
      const delay = this.backoff.next();
      this.o.log.warn({ err: errorText(e), delayMs: delay }, "API not reachable; retrying");
      this.retry = setTimeout(() => this.open(), delay);
    });
  }

  private openStream(): void {
    if (this.stopped || !this.credential) return;
    const md = new grpc.Metadata();
    // With mutual TLS the certificate is the identity; the bearer credential is not sent.
    if (!this.material) md.set("authorization", `Bearer ${this.credential.credential}`);
    md.set("palisade-host", this.credential.hostId);
    // The channel open() waited for (a renewal may have marked it stale since: next time).
    const stream: Duplex = this.client!.Connect(md);
    this.stream = stream;
    this.connects++;
    let ended = false;
    const end = (why: string, e?: unknown) => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = undefined;
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = undefined;
      this.o.handlers.disconnected?.();
      if (this.stopped) return;
      if (this.moving === stream) {
        this.moving = undefined;
        this.retry = setTimeout(() => this.open(), 0);
        return;
      }
      const delay = this.backoff.next();
      this.o.log.warn({ why, err: e ? errorText(e) : undefined, delayMs: delay }, "stream closed; reconnecting");
      this.retry = setTimeout(() => this.open(), delay);
    };
    stream.on("data", (m: ServerMessage) => {
      this.backoff.reset();
      this.dispatch(m);
    });
    stream.on("error", (e: grpc.ServiceError) => end(`error ${e.code}`, e));
    stream.on("end", () => end("server ended the stream"));
    stream.on("close", () => end("closed"));
    void this.sayHello(stream);
  }

  private async sayHello(stream: Duplex): Promise<void> {
    try {
      const [caps, h] = await Promise.all([this.o.capabilities(), this.o.hello()]);
      if (this.stream !== stream) return;
      stream.write({
        hello: {
          capabilities: caps,
          applied: h.applied,
          telemetryEpoch: h.telemetryEpoch,
          bansHeld: h.bansHeld ?? false,
        },
      });
      this.heartbeat = setInterval(() => this.send({ heartbeat: this.heartbeatBody() }), this.o.heartbeatMs ?? 15_000);
      this.o.handlers.connected();
    } catch (e) {
      this.o.log.error({ err: errorText(e) }, "cannot send hello");
      stream.cancel();
    }
  }

  private heartbeatBody(): NonNullable<AgentMessage["heartbeat"]> {
    const b = this.o.backlog?.();
    return {
      seq: String(++this.hbSeq),
      unixMs: String(Date.now()),
      ...(b && { spoolBatches: String(b.batches), spoolBytes: String(b.bytes) }),
    };
  }

  private dispatch(m: ServerMessage): void {
    const h = this.o.handlers;
    try {
      if (m.desiredState) h.desiredState(m.desiredState);
      else if (m.confirm) h.confirm(m.confirm);
      else if (m.telemetryAck) h.telemetryAck({ epoch: m.telemetryAck.epoch, seq: Number(m.telemetryAck.seq) });
      else if (m.checkDrift) h.checkDrift();
      else if (m.quotaReset) h.quotaReset(m.quotaReset);
      else if (m.resultAck) h.resultAck?.(m.resultAck.resultId);
      else if (m.banUpdate) h.banUpdate?.(m.banUpdate);
      else if (m.conditionUpdate) h.conditionUpdate?.(m.conditionUpdate);
      else if (m.geoipUpdate) h.geoipUpdate?.(m.geoipUpdate);
      else if (m.dynamicSets) h.dynamicSets?.(m.dynamicSets);
      // heartbeat answers only prove the stream is alive
    } catch (e) {
      this.o.log.error(
        { err: errorText(e), body: Object.keys(m).find((k) => m[k as keyof ServerMessage] !== undefined) },
        "handler failed",
      );
    }
  }

  /** End the stream and reconnect (with the usual backoff): the API answers the Hello with the full state. */
  resync(why: string): void {
    const s = this.stream;
    if (this.stopped || !s) return;
    this.o.log.warn({ why }, "ending the stream to get the full state again");
    s.cancel();
  }

  /** Close the stream and stop reconnecting. */
  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.renewTimer) clearTimeout(this.renewTimer);
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      s.end();
      s.cancel();
    }
    this.client?.close();
  }
}
