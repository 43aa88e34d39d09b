// The agent's gRPC client: enroll once (credential kept in the state dir, mode 0600),
// then hold one Connect stream authenticated with `authorization: Bearer <credential>`.
// On every (re)connect it sends Hello (capabilities, what it believes is applied, the
// telemetry epoch) and lets the caller resend spooled telemetry. Server messages are
// dispatched to handlers. The stream is reopened after any end or error with
// exponential backoff and jitter; a stream that delivered a server message resets it.

import * as grpc from "@grpc/grpc-js";
import { AgentError, errorText } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { StateDir, Credential } from "./state.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import { agentServiceClient, MAX_MESSAGE_BYTES, type AgentMessage, type AppliedVersionMsg, type CapabilitiesMsg, type DesiredStateMsg, type ServerMessageIn } from "./proto.ts";

export interface ClientHandlers {
  desiredState(m: DesiredStateMsg): void;
  confirm(m: { deploymentId: string; targetId: string }): void;
  checkDrift(): void;
  quotaReset(m: { requestId: string; name: string }): void;
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
  tls: boolean;
  name: string;
  enrollToken?: string;
  state: StateDir;
  log: Logger;
  capabilities: () => Promise<CapabilitiesMsg>;
  hello: () => Promise<{ applied?: AppliedVersionMsg; telemetryEpoch: string }>;
  handlers: ClientHandlers;
  backoff?: BackoffOptions;
  heartbeatMs?: number;
  /** Enroll/connect deadline. */
  deadlineMs?: number;
}

type Duplex = grpc.ClientDuplexStream<AgentMessage, ServerMessageIn>;
type EnrollFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { hostId: string; hostName: string; credential: string }) => void) => void;

export class AgentClient {
  private client: grpc.Client;
  private stream: Duplex | undefined;
  private stopped = false;
  private backoff: Backoff;
  private heartbeat: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private hbSeq = 0;
  private credential: Credential | undefined;
  /** Streams opened so far (tests observe reconnects). */
  connects = 0;

  constructor(private readonly o: ClientOptions) {
    const Ctor = agentServiceClient();
    const backoff = o.backoff ?? { initialMs: 500, maxMs: 30_000 };
    this.client = new Ctor(o.server, o.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      // The channel's own reconnect pace (open() waits for it) follows the agent's backoff.
      "grpc.initial_reconnect_backoff_ms": backoff.initialMs,
      "grpc.max_reconnect_backoff_ms": backoff.maxMs,
    });
    this.backoff = new Backoff(backoff);
  }

  get connected(): boolean {
    return this.stream !== undefined;
  }

  /** The stored credential, or enroll with the token (and store it). */
  async ensureCredential(): Promise<Credential> {
    const stored = await this.o.state.readCredential();
    if (stored) return (this.credential = stored);
    if (!this.o.enrollToken) throw new AgentError("enroll_failed", "no credential in the state dir and no enrollment token (--enroll-token)");
    const caps = await this.o.capabilities();
    const enroll = (this.client as unknown as { Enroll: EnrollFn }).Enroll.bind(this.client);
    const res = await new Promise<{ hostId: string; hostName: string; credential: string }>((resolve, reject) => {
      enroll({ token: this.o.enrollToken, name: this.o.name, capabilities: caps }, new grpc.Metadata(), { deadline: Date.now() + (this.o.deadlineMs ?? 15_000) }, (e, r) =>
        e || !r ? reject(new AgentError("enroll_failed", `enrollment refused: ${e?.details ?? "empty answer"}`, { cause: e })) : resolve(r),
      );
    });
    const c: Credential = { hostId: res.hostId, hostName: res.hostName, credential: res.credential };
    await this.o.state.writeCredential(c);
    this.o.log.info("enrolled", { hostId: c.hostId, hostName: c.hostName });
    return (this.credential = c);
  }

  /** Enroll if needed, then keep a stream open until stop(). */
  async start(): Promise<void> {
    await this.ensureCredential();
    this.open();
  }

  send(msg: AgentMessage): boolean {
    if (!this.stream) return false;
    try {
      this.stream.write(msg);
      return true;
    } catch (e) {
      this.o.log.warn("stream write failed", { error: errorText(e) });
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
    this.client.waitForReady(Date.now() + (this.o.deadlineMs ?? 15_000), (e) => {
      if (this.stopped) return;
      if (!e) return this.openStream();
      const delay = this.backoff.next();
      this.o.log.warn("API not reachable; retrying", { error: errorText(e), delayMs: delay });
      this.retry = setTimeout(() => this.open(), delay);
    });
  }

  private openStream(): void {
    if (this.stopped || !this.credential) return;
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${this.credential.credential}`);
    md.set("palisade-host", this.credential.hostId);
    const connect = (this.client as unknown as { Connect: (md: grpc.Metadata) => Duplex }).Connect.bind(this.client);
    const stream = connect(md);
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
      const delay = this.backoff.next();
      this.o.log.warn("stream closed; reconnecting", { why, error: e ? errorText(e) : undefined, delayMs: delay });
      this.retry = setTimeout(() => this.open(), delay);
    };
    stream.on("data", (m: ServerMessageIn) => {
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
      stream.write({ hello: { capabilities: caps, ...(h.applied ? { applied: h.applied } : {}), telemetryEpoch: h.telemetryEpoch } });
      this.heartbeat = setInterval(() => this.send({ heartbeat: { seq: ++this.hbSeq, unixMs: Date.now() } }), this.o.heartbeatMs ?? 15_000);
      this.o.handlers.connected();
    } catch (e) {
      this.o.log.error("cannot send hello", { error: errorText(e) });
      stream.cancel();
    }
  }

  private dispatch(m: ServerMessageIn): void {
    const h = this.o.handlers;
    try {
      if (m.desiredState) h.desiredState(m.desiredState);
      else if (m.confirm) h.confirm(m.confirm);
      else if (m.telemetryAck) h.telemetryAck({ epoch: m.telemetryAck.epoch, seq: Number(m.telemetryAck.seq) });
      else if (m.checkDrift) h.checkDrift();
      else if (m.quotaReset) h.quotaReset(m.quotaReset);
      else if (m.resultAck) h.resultAck?.(m.resultAck.resultId);
      // heartbeat answers only prove the stream is alive
    } catch (e) {
      this.o.log.error("handler failed", { error: errorText(e), body: m.body });
    }
  }

  /** Close the stream and stop reconnecting. */
  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.heartbeat) clearInterval(this.heartbeat);
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      s.end();
      s.cancel();
    }
    this.client.close();
  }
}
