// One agent's Connect stream on this replica. Messages are handled strictly in arrival
// order (one promise chain), because order carries meaning: "applied" then "rolled_back"
// for the same target must land in that order. The host is fixed by the credential when
// the stream opens; nothing the agent sends can change which host it speaks for.
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { desiredStateFor } from "../deploy/desired.ts";
import {
  applyingWithVersion,
  claimForHost,
  claimTarget,
  recordResult,
  settleAfterResult,
  type ClaimedTarget,
} from "../deploy/targets.ts";
import type { Prisma } from "../db/client.ts";
import { publishToHost, type AgentBus, type HostNotice, type Resubscribed } from "../host-bus.ts";
import type { AgentContext } from "./context.ts";
import { AgentRpcError, toStatus } from "./errors.ts";
import type { AgentIdentity } from "./identity.ts";
import {
  MalformedMessage,
  parseAgentMessage,
  type AgentMessage,
  type AppliedVersion,
  type ApplyResult,
  type DriftReport,
} from "./messages.ts";
import type { AgentMessage as AgentMessageIn, ServerMessage } from "../../protocol/agent.ts";
import { applyResults, countIngested, telemetryBatches } from "../metrics/events.ts";
import { bansForHost, hasBansCapability } from "../bans/index.ts";
import { conditionsForHost, hasConditionsCapability } from "../conditions/index.ts";
import { geoUpdatesFor, type CountryUpdate } from "../geoip/index.ts";
import { MAX_BANS_PER_HOST } from "../config.ts";
import { replyChannel, shareTrapHits, type Reply } from "../dynamic-sets/index.ts";
import { ingestTelemetry, pendingQuotaResets, recordQuotaReset, TelemetryError } from "../telemetry/index.ts";

/** Trap-hit reports one stream may have waiting to be shared. */
const TRAP_QUEUE_MAX = 64;

export type AgentCall = grpc.ServerDuplexStream<AgentMessageIn, ServerMessage>;

/** Don't write last_seen_at for every message; a few seconds of resolution is plenty. */
const LAST_SEEN_RESOLUTION_MS = 5_000;
/**
 * The spool backlog a heartbeat reports is written only when it changed, and at most this
 * often per stream, whatever pace the agent sends at (heartbeats come every 15 s by default).
 */
export const SPOOL_WRITE_RESOLUTION_MS = 5_000;
/** Stop reading from an agent that sends faster than we can store (resume below LOW). */
const HIGH_WATER = 64;
const LOW_WATER = 8;

/** "ipv4:10.0.0.2:41234" / "ipv6:[fd00::2]:41234" -> the address; undefined for unix sockets. */
export function peerAddress(peer: string): string | undefined {
  const m = /^ipv4:([\d.]+):\d+$/.exec(peer) ?? /^ipv6:\[([0-9a-fA-F:.]+)(?:%[^\]]*)?\]:\d+$/.exec(peer);
  return m?.[1]?.replace(/^::ffff:(?=\d+\.)/i, "");
}

export class AgentSession {
  readonly id = randomUUID();
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private paused = false;
  private closed = false;
  private detach: (() => Promise<void>) | undefined;
  private lastSeenWritten = 0;
  private spoolWritten: { at: number; batches: string; bytes: string } | undefined;

  constructor(
    private readonly ctx: AgentContext,
    private readonly bus: AgentBus,
    private readonly call: AgentCall,
    readonly identity: AgentIdentity,
    private readonly onClosed: (s: AgentSession) => void,
  ) {}

  /** Wire the stream up. Messages that arrive before the subscription is ready wait in the chain. */
  start(): void {
    this.call.on("data", (raw: AgentMessageIn) => this.enqueue(() => this.onMessage(raw)));
    this.call.on("end", () => {
      this.call.end();
      void this.close("agent ended the stream");
    });
    this.call.on("cancelled", () => void this.close("stream cancelled"));
    this.call.on("error", (err: Error) => void this.close(`stream error: ${err.message}`));
    this.call.on("close", () => void this.close("stream closed"));
    this.enqueue(() => this.open());
  }

  /** End the stream from our side (server stopping, or a newer stream took over). */
  async terminate(code: grpc.status, details: string): Promise<void> {
    if (!this.closed) this.call.emit("error", { code, details, metadata: new grpc.Metadata() });
    await this.close(details);
  }

  /** The host was deleted or disabled: end the stream with a status the agent reports. */
  async revoke(reason: "deleted" | "disabled"): Promise<void> {
    if (this.closed) return;
    const err =
      reason === "deleted"
        ? new AgentRpcError(
            "host_deleted",
            `host "${this.identity.hostName}" was deleted by an admin; enroll again with a new enrollment token`,
          )
        : new AgentRpcError("host_disabled", `host "${this.identity.hostName}" was disabled by an admin`);
    this.ctx.log.warn({ hostId: this.identity.hostId, host: this.identity.hostName, reason }, "agent stream revoked");
    this.call.emit("error", err.toStatus());
    await this.close(`revoked: host ${reason}`);
  }

  private async open(): Promise<void> {
    const { hostId } = this.identity;
    // A revocation skips the message chain: it must not wait behind a slow ingest.
    this.detach = await this.bus.attach(hostId, (n) =>
      n.type === "revoke" ? void this.revoke(n.reason) : this.enqueue(() => this.onNotice(n)),
    );
    if (this.closed) return void (await this.detach());
    const now = new Date();
    // Conditional on the host still being enabled: a revocation published between the
    // credential check and the subscription above would otherwise be missed.
    const agentAddress = peerAddress(this.call.getPeer());
    const opened = await this.ctx.db.host.updateMany({
      where: { id: hostId, disabled: false },
      data: {
        connection: "connected",
        sessionId: this.id,
        lastSeenAt: now,
        updatedAt: now,
        ...(agentAddress && { agentAddress }),
      },
    });
    if (opened.count === 0)
      throw new AgentRpcError("host_disabled", `host "${this.identity.hostName}" was deleted or disabled by an admin`);
    this.lastSeenWritten = now.getTime();
    // Any older stream of this host (a half-dead one, perhaps on another replica) ends now.
    await publishToHost(this.ctx.redis, hostId, { type: "kick", sessionId: this.id }).catch((err: Error) =>
      // Redis down: an older stream of this host on another replica is not told to end now.
      this.ctx.log.warn({ err: err.message, hostId }, "could not tell older streams of this host to end (Redis down)"),
    );
    this.ctx.log.info(
      {
        hostId,
        host: this.identity.hostName,
        session: this.id,
        ...(this.identity.certSerial && { certSerial: this.identity.certSerial }),
      },
      "agent connected",
    );
  }

  private async close(reason: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
    await this.detach?.().catch(() => {});
    const now = new Date();
    // Only if we are still the host's current stream: a reconnect elsewhere already won.
    await this.ctx.db.host
      .updateMany({
        where: { id: this.identity.hostId, sessionId: this.id },
        data: { connection: "disconnected", sessionId: null, lastSeenAt: now, updatedAt: now },
      })
      .catch((err: Error) =>
        this.ctx.log.warn({ err: err.message, hostId: this.identity.hostId }, "could not mark host disconnected"),
      );
    this.ctx.log.info(
      { hostId: this.identity.hostId, host: this.identity.hostName, session: this.id, reason },
      "agent disconnected",
    );
  }

  private enqueue(fn: () => Promise<void>): void {
    if (++this.queued > HIGH_WATER && !this.paused) {
      this.paused = true;
      this.call.pause();
    }
    this.chain = this.chain
      .then(() => (this.closed ? undefined : fn()))
      .catch((err: unknown) => this.fail(err))
      .finally(() => {
        if (--this.queued < LOW_WATER && this.paused) {
          this.paused = false;
          this.call.resume();
        }
      });
  }

  /** Refuse the stream with a status; the server and the other streams carry on. */
  private async fail(err: unknown): Promise<void> {
    if (this.closed) return;
    if (!(err instanceof AgentRpcError))
      this.ctx.log.error({ err, hostId: this.identity.hostId }, "agent stream failed");
    else this.ctx.log.warn({ code: err.code, msg: err.message, hostId: this.identity.hostId }, "agent stream refused");
    const status = toStatus(err);
    this.call.emit("error", status);
    await this.close(`refused: ${status.details}`);
  }

  private send(msg: ServerMessage): void {
    if (!this.closed) this.call.write(msg);
  }

  private async onMessage(raw: AgentMessageIn): Promise<void> {
    let msg: AgentMessage;
    try {
      msg = parseAgentMessage(raw);
    } catch (err) {
      if (err instanceof MalformedMessage) throw new AgentRpcError("malformed_message", err.message);
      throw err;
    }
    await this.touch();
    switch (msg.kind) {
      case "hello":
        return this.onHello(msg.hello.capabilities ?? undefined, msg.hello.applied ?? undefined, msg.hello.bansHeld);
      case "heartbeat":
        await this.recordBacklog(msg.heartbeat);
        return this.send({ heartbeat: { seq: msg.heartbeat.seq, unixMs: String(Date.now()) } });
      case "applyResult":
        return this.onApplyResult(msg.applyResult);
      case "drift":
        return this.onDrift(msg.drift);
      case "telemetry": {
        // Acked only after the batch's transaction committed (a duplicate is acked again).
        // A batch that can never be stored (invalid_batch) is logged and acked, so the agent
        // does not resend it forever; any other error leaves it unacked and spooled.
        try {
          const r = await ingestTelemetry(this.ctx, this.identity.hostId, msg.telemetry);
          countIngested(r);
          return this.send({ telemetryAck: { epoch: r.epoch, seq: r.seq } });
        } catch (err) {
          if (!(err instanceof TelemetryError && err.code === "invalid_batch")) throw err;
          telemetryBatches.inc({ result: "refused" });
          this.ctx.log.error({ hostId: this.identity.hostId, err: err.message }, "telemetry batch refused and dropped");
          return this.send({ telemetryAck: { epoch: msg.telemetry.epoch, seq: msg.telemetry.seq } });
        }
      }
      case "quotaReset": {
        const q = msg.quotaReset;
        // Only a pending request changes, so a resent result is a no-op (and acked again).
        await recordQuotaReset(this.ctx, this.identity.hostId, {
          requestId: q.requestId,
          ok: q.ok,
          ...(q.name && { name: q.name }),
          ...(q.error && { error: q.error }),
        });
        return this.ackResult(q.resultId);
      }
      case "dynamicSets": {
        // The asking replica waits on the request's reply channel; nobody listening = it gave up.
        const reply: Reply = { hostId: this.identity.hostId, result: msg.dynamicSets };
        await this.ctx.redis.publish(replyChannel(msg.dynamicSets.requestId), JSON.stringify(reply));
        return;
      }
      case "geoipRequest": {
        // What the agent's kernel needs now: exactly these countries from here on.
        this.geoHeld = new Map(msg.geoipRequest.countries.map((c) => [c.country, c.revision]));
        return this.sendGeo(await geoUpdatesFor(this.ctx.db, msg.geoipRequest.countries));
      }
      case "trapHits": {
        if (msg.trapHits.addresses.length === 0) return;
        // Off the message chain (like settleAfterResult): the share's Redis claims, guard and
        // fleet ban must not hold this stream's Confirms and apply results behind them.
        // One share at a time per stream, in order; a report arriving while TRAP_QUEUE_MAX wait
        // is dropped (the trapping host's own ban holds).
        if (this.trapQueued >= TRAP_QUEUE_MAX) {
          this.ctx.log.warn({ hostId: this.identity.hostId }, "trap hits not shared: too many reports waiting");
          return;
        }
        this.trapQueued++;
        const addresses = msg.trapHits.addresses;
        this.trapChain = this.trapChain
          .then(() =>
            shareTrapHits(
              {
                ...this.ctx,
                maxPerHost: MAX_BANS_PER_HOST,
                ...(this.ctx.trapBansPerMinute && { trapBansPerMinute: this.ctx.trapBansPerMinute }),
              },
              this.identity.hostId,
              addresses,
            ),
          )
          .then(
            () => undefined,
            // A refused or failed share never ends the stream: the trapping host's own ban holds.
            (e) =>
              this.ctx.log.warn({ hostId: this.identity.hostId, err: (e as Error).message }, "trap hits not shared"),
          )
          .finally(() => this.trapQueued--);
        return;
      }
    }
  }

  /** Trap-hit shares of this stream, run one after another off the message chain. */
  private trapChain: Promise<void> = Promise.resolve();
  private trapQueued = 0;

  /**
   * The result with this id is processed: its transaction committed, or it was ignored
   * (stale, or already processed). The agent drops it from its outbox only now; until then
   * it resends it after every Hello, so every result handler must be idempotent.
   */
  private ackResult(resultId: string): void {
    if (resultId) this.send({ resultAck: { resultId } });
  }

  /** Keep the reported spool backlog on the host row (/metrics sums it over the fleet). */
  private async recordBacklog(hb: {
    spoolBatches?: string | undefined;
    spoolBytes?: string | undefined;
  }): Promise<void> {
    if (hb.spoolBatches === undefined || hb.spoolBytes === undefined) return;
    const now = Date.now();
    const last = this.spoolWritten;
    if (last && last.batches === hb.spoolBatches && last.bytes === hb.spoolBytes) return;
    if (last && now - last.at < (this.ctx.spoolWriteResolutionMs ?? SPOOL_WRITE_RESOLUTION_MS)) return;
    this.spoolWritten = { at: now, batches: hb.spoolBatches, bytes: hb.spoolBytes };
    await this.ctx.db.host.updateMany({
      where: { id: this.identity.hostId, sessionId: this.id },
      data: {
        spoolBatches: BigInt(hb.spoolBatches),
        spoolBytes: BigInt(hb.spoolBytes),
        spoolReportedAt: new Date(now),
      },
    });
  }

  private async touch(): Promise<void> {
    const now = Date.now();
    if (now - this.lastSeenWritten < LAST_SEEN_RESOLUTION_MS) return;
    this.lastSeenWritten = now;
    await this.ctx.db.host.updateMany({
      where: { id: this.identity.hostId, sessionId: this.id },
      data: { lastSeenAt: new Date(now) },
    });
  }

  /** Its Hello was handled: capabilities known, state sent once. */
  private helloDone = false;
  /** Its Hello listed the `bans` feature (docs/bans.md). */
  private bansCapable = false;
  /** Its Hello listed the `conditions` feature (docs/conditions.md). */
  private conditionsCapable = false;
  /**
   * The countries the agent's geoip sets need and the revision it holds of each (its last
   * GeoIpRequest, advanced by what this stream sent). A load's notice sends only these.
   */
  private geoHeld = new Map<string, number>();

  /** One message per country: a whole large country is a few MB, well under MAX_MESSAGE_BYTES alone. */
  private sendGeo(updates: CountryUpdate[]): void {
    for (const u of updates) {
      const from = this.geoHeld.get(u.country) ?? 0;
      this.geoHeld.set(u.country, u.revision);
      this.send({
        geoipUpdate: {
          countries: [
            {
              country: u.country,
              revision: String(u.revision),
              full: u.full,
              ipv4Add: u.ipv4Add,
              ipv4Del: u.ipv4Del,
              ipv6Add: u.ipv6Add,
              ipv6Del: u.ipv6Del,
              fromRevision: String(from),
            },
          ],
        },
      });
    }
  }

  private async onHello(
    caps: Prisma.InputJsonValue | undefined,
    applied: AppliedVersion | undefined,
    bansHeld: boolean,
  ): Promise<void> {
    const { db } = this.ctx;
    const hostId = this.identity.hostId;
    const data: Prisma.HostUpdateInput = { updatedAt: new Date() };
    if (caps) data.capabilities = caps;
    this.bansCapable = hasBansCapability(caps);
    this.conditionsCapable = hasConditionsCapability(caps);
    let appliedVersionId: string | null | undefined;
    if (applied) {
      appliedVersionId = applied.ruleset ? await this.versionIdOf(applied) : null;
      data.appliedVersion = appliedVersionId ? { connect: { id: appliedVersionId } } : { disconnect: true };
    }
    await db.host.update({ where: { id: hostId }, data });
    // Reconciled against the host's targets: one being applied with exactly the version the
    // agent reports is confirmed (its APPLYING was lost with the old stream); it becomes
    // applied on the APPLIED the agent sends once it recorded the commit. One with another
    // version is not confirmed: the agent is not waiting on it (an agent waiting on a
    // Confirm reports that version), and its result (ROLLED_BACK after a restart) follows
    // from the agent's outbox.
    if (appliedVersionId) {
      for (const t of await applyingWithVersion(db, hostId, appliedVersionId)) this.send({ confirm: t });
    }
    this.helloDone = true;
    await this.catchUp(bansHeld);
  }

  /**
   * The bus is subscribed again after losing Redis. A stream that another one replaced
   * meanwhile (its kick was lost with the link) ends instead of claiming its host's work;
   * a failure is logged, not the end of the stream (every stream of the replica catches up
   * at once, and a database blip then would cut them all).
   */
  private async afterResubscribe(): Promise<void> {
    if (!this.helloDone) return; // the Hello catches up
    const { hostId } = this.identity;
    try {
      const current = await this.ctx.db.host.count({ where: { id: hostId, sessionId: this.id } });
      if (current === 0) return await this.terminate(grpc.status.ABORTED, "a newer stream for this host took over");
      await this.catchUp(true);
    } catch (e) {
      this.ctx.log.warn(
        { hostId, err: (e as Error).message },
        "catch-up after the bus reconnected failed; the next Hello does it",
      );
    }
  }

  /**
   * What the host's notices carry, read from Postgres: after its Hello (it was offline), and
   * after the bus lost Redis (notices published meanwhile found no listener). Every part is
   * idempotent: a pending target is claimed once, bans and conditions are whole states, the
   * agent runs a quota reset request once.
   * `bansHeld`: the agent may hold bans, so an empty state is sent too.
   */
  private async catchUp(bansHeld: boolean): Promise<void> {
    const { db } = this.ctx;
    const hostId = this.identity.hostId;
    // Quota resets asked for while the agent was away (the agent runs each request once).
    for (const m of await pendingQuotaResets(this.ctx, hostId))
      this.send({ quotaReset: { requestId: m.requestId, name: m.name } });
    // A host that was offline (or is new) gets what its deployments want it to run: first,
    // so nothing about bans (a failure, a message the stream refuses) can hold it back.
    const claimed = await claimForHost(db, hostId);
    if (claimed) await this.sendDesired(claimed);
    // Its whole ban state: lists and addresses changed while it was away converge here.
    try {
      const banLists = [...(await bansForHost(db, hostId))].map(([list, add]) => ({ list, add, remove: [] }));
      const n = banLists.reduce((k, l) => k + l.add.length, 0);
      // Adds over the cap are refused; rows from before the cap would end the stream on every Hello.
      if (n > MAX_BANS_PER_HOST) {
        this.ctx.log.error(
          { hostId, bans: n, max: MAX_BANS_PER_HOST },
          "host selected by more bans than one message holds; ban state not sent",
        );
      } else if (banLists.length > 0 || bansHeld) this.sendBans(true, banLists);
    } catch (e) {
      this.ctx.log.error({ hostId, err: (e as Error).message }, "ban state not sent");
    }
    // Its whole condition state (names not listed are off): flips made while it was away converge here.
    if (this.conditionsCapable) {
      try {
        const values = [...(await conditionsForHost(db, hostId))].map(([name, on]) => ({ name, on }));
        this.send({ conditionUpdate: { full: true, values } });
      } catch (e) {
        this.ctx.log.error({ hostId, err: (e as Error).message }, "condition state not sent");
      }
    }
    // Country data loaded meanwhile: only what differs from the revisions this stream sent.
    const held = [...this.geoHeld].map(([country, revision]) => ({ country, revision }));
    if (held.length) this.sendGeo(await geoUpdatesFor(db, held));
  }

  /** The stored version the agent says it runs; null when unknown or its checksum differs. */
  private async versionIdOf(a: AppliedVersion): Promise<string | null> {
    const v = await this.ctx.db.rulesetVersion.findFirst({
      where: { number: a.version, ruleset: { name: a.ruleset } },
      select: { id: true, checksum: true },
    });
    if (!v) return null;
    if (a.checksum && a.checksum !== v.checksum) {
      this.ctx.log.warn(
        { hostId: this.identity.hostId, ruleset: a.ruleset, version: a.version },
        "agent reports a checksum that differs from the stored version",
      );
      return null;
    }
    return v.id;
  }

  /**
   * recordResult is a state machine over the target's row: a transition happens once, so the
   * same result again (a resend whose first ack was lost) is ignored — or, for "applied",
   * answered with Confirm again and nothing written.
   */
  private async onApplyResult(r: ApplyResult): Promise<void> {
    const out = await recordResult(this.ctx.db, this.identity.hostId, r);
    if (out.kind === "foreign") {
      // Acked before the refusal, so an agent that somehow holds such a result does not
      // resend it (and lose its stream) after every reconnect.
      this.ackResult(r.resultId);
      throw new AgentRpcError("wrong_host", `target ${r.targetId} does not belong to host "${this.identity.hostName}"`);
    }
    if (out.kind === "ignored") {
      this.ctx.log.debug(
        { hostId: this.identity.hostId, targetId: r.targetId, reason: out.reason },
        "apply result ignored",
      );
      return this.ackResult(r.resultId);
    }
    this.ctx.log.info(
      {
        hostId: this.identity.hostId,
        deploymentId: out.deploymentId,
        targetId: r.targetId,
        status: out.status,
        error: r.error || undefined,
      },
      "apply result",
    );
    applyResults.inc({ outcome: out.status });
    // Hearing "applied" over the stream is the contact commit-confirm waits for.
    if (out.confirm) this.send({ confirm: { deploymentId: out.deploymentId, targetId: r.targetId } });
    this.ackResult(r.resultId);
    // After the Confirm and off the message chain: the settle may queue on the deployment's
    // row lock, and neither this stream's later messages nor the stream itself wait on it.
    if (out.settle) void settleAfterResult(this.ctx.db, out.deploymentId, this.ctx.log);
  }

  /**
   * The report's result id is stored in drift_details and the row is only written when it
   * differs, so a resent report (its first ack lost) leaves the host as it is. Reports
   * arrive in order (the agent resends its outbox oldest first), so the stored id is always
   * the newest processed one.
   */
  private async onDrift(d: DriftReport): Promise<void> {
    const now = new Date();
    // Drift that the agent already repaired is history, not current state.
    const drift = d.drifted && !d.restored;
    const details = JSON.stringify({
      drifted: d.drifted,
      restored: d.restored,
      details: d.details,
      reportedAt: now.toISOString(),
      ...(d.resultId && { resultId: d.resultId }),
    });
    const n = await this.ctx.db.$executeRaw`
      UPDATE hosts SET drift = ${drift}, drift_details = ${details}::jsonb, drift_checked_at = ${now}, updated_at = ${now}
       WHERE id = ${this.identity.hostId}::uuid
         AND (${d.resultId} = '' OR drift_details IS NULL OR drift_details->>'resultId' IS DISTINCT FROM ${d.resultId})`;
    if (n === 0)
      this.ctx.log.debug({ hostId: this.identity.hostId, resultId: d.resultId }, "drift report already recorded");
    else if (d.drifted)
      this.ctx.log.warn(
        { hostId: this.identity.hostId, restored: d.restored, details: d.details.slice(0, 500) },
        "drift reported",
      );
    this.ackResult(d.resultId);
  }

  private async onNotice(n: HostNotice | Resubscribed): Promise<void> {
    switch (n.type) {
      case "resubscribed":
        return this.afterResubscribe();
      case "offer": {
        const claimed = await claimTarget(this.ctx.db, n.targetId, this.identity.hostId);
        if (claimed) await this.sendDesired(claimed);
        return;
      }
      case "kick":
        if (n.sessionId !== this.id)
          await this.terminate(grpc.status.ABORTED, "a newer stream for this host took over");
        return;
      case "check_drift":
        return this.send({ checkDrift: {} });
      case "quota_reset":
        return this.send({ quotaReset: { requestId: n.requestId, name: n.name } });
      case "revoke":
        return this.revoke(n.reason);
      case "bans":
        return this.sendBans(false, n.lists);
      case "conditions":
        // An agent older than conditions would ignore them: the PUT reports it as unsupported.
        if (this.conditionsCapable) this.send({ conditionUpdate: { full: false, values: n.values } });
        return;
      case "geoip": {
        // Only countries this agent's policy uses; from the revision this stream last sent.
        const held = n.countries
          .filter((c) => this.geoHeld.has(c))
          .map((c) => ({ country: c, revision: this.geoHeld.get(c)! }));
        if (held.length) this.sendGeo(await geoUpdatesFor(this.ctx.db, held));
        return;
      }
      case "dynamic_sets":
        return this.send({
          dynamicSets: {
            requestId: n.requestId,
            set: n.set ?? "",
            limit: n.limit ?? 0,
            deleteSet: n.deleteSet ?? "",
            deleteAddress: n.deleteAddress ?? "",
          },
        });
    }
  }

  /** The TTL is what remains of each ban now; one already over is left out (full) or removed. */
  private sendBans(
    full: boolean,
    lists: { list: string; add: { address: string; expiresAtMs: number }[]; remove: string[] }[],
  ): void {
    // An agent older than bans would ignore them (and, downgraded, delete palisade_bans as
    // a policy table): it gets none; the POST counts it as unsupported.
    if (!this.bansCapable) return;
    const now = Date.now();
    const out = lists.map((l) => {
      const live = l.add.filter((a) => a.expiresAtMs > now);
      const over = full ? [] : l.add.filter((a) => a.expiresAtMs <= now).map((a) => a.address);
      return {
        list: l.list,
        add: live.map((a) => ({ address: a.address, ttlMs: String(a.expiresAtMs - now) })),
        remove: [...l.remove, ...over],
      };
    });
    this.send({ banUpdate: { full, lists: out } });
  }

  private async sendDesired(claimed: ClaimedTarget): Promise<void> {
    const desiredState = await desiredStateFor(this.ctx.db, claimed);
    this.ctx.log.info(
      {
        hostId: this.identity.hostId,
        deploymentId: claimed.deploymentId,
        targetId: claimed.targetId,
        version: desiredState.version,
      },
      "desired state sent",
    );
    this.send({ desiredState });
  }
}
