// Single-packet authorisation (pknock UDP mode, protections.spaKnock): the kernel logs each
// knock to NFLOG and drops it; this verifies its HMAC and opens or closes the port for the
// knocking source by one element operation on the rule's timeout set. The kernel cannot
// compute an HMAC, the agent can (docs/engine.md, "spaKnock").
//
// A knock is what xt_pknock checks: a UDP payload of 64 lowercase hex digits (a trailing
// NUL or newline allowed, as its knock scripts send) equal to
//   HMAC-SHA256(secret, source IPv4 address (4 bytes, network order) || minutes since the
//               Unix epoch (u32, little-endian: the kernel module hashes its host-order int,
//               and every platform it is used on is little-endian))
// under openSecret (open) or closeSecret (close). Differences from xt_pknock, both safer:
// the minute before the current one is accepted too (a knock sent at hh:mm:59.9 arrives
// in the next minute), and every accepted knock is remembered until its minute can no
// longer be accepted, so a captured knock replayed later (even after a close, or after an
// agent restart: the digests are in the state dir before the port opens) opens nothing.
// IPv4 only, like xt_pknock: the HMAC covers a 32-bit address.
//
// Checking costs four HMACs. All sources together get MAX_PER_SECOND checks a second. Once
// half of that is used in a second, one source gets at most PER_SOURCE_PER_SECOND more, so
// a flood from one address cannot use the budget of the others; below that, no source is
// capped, so forging a few knocks a second from a client's address cannot silence its
// real knock. (A flood from many forged sources can still use the budget up: such knocks
// are dropped by the kernel either way, and the knocker retries.)
import { createHmac, timingSafeEqual } from "node:crypto";
import { driver as kernel, spaList, spaLogPrefix, type DriverOptions } from "../engine/index.ts";
import type { Logger } from "../runtime/log.ts";
import { errorText } from "./errors.ts";
import { READ_RETRY, RetriedRead, type ReadRetry } from "./retried-read.ts";
import type { SpaUsed } from "./state.ts";
import { decodeIp, type NflogPacket } from "./telemetry/nflog.ts";

export interface SpaRule {
  name: string;
  openSecret: string;
  closeSecret: string;
}

export type KnockOutcome =
  | { kind: "open" | "close"; source: string }
  | { kind: "refused"; source: string; reason: string };

/** The hex digest a knock from `ipv4` in `minute` carries under `secret`. */
export function knockDigest(secret: string, ipv4: string, minute: number): string {
  const msg = Buffer.alloc(8);
  ipv4.split(".").forEach((b, i) => msg.writeUInt8(Number(b), i));
  msg.writeUInt32LE(minute >>> 0, 4);
  return createHmac("sha256", secret).update(msg).digest("hex");
}

/** At most this many knocks are checked per second; a flood of knocks costs no more CPU. */
export const MAX_PER_SECOND = 2000;
/** Once half the budget of a second is used, at most this many knocks of one source address are checked. */
export const PER_SOURCE_PER_SECOND = 4;

/** Where accepted digests are kept across restarts (the state dir's spa-used.json). */
export interface SpaUsedStore {
  read(): Promise<SpaUsed | undefined>;
  write(u: SpaUsed): Promise<void>;
}

export class SpaVerifier {
  private rules = new Map<string, SpaRule>();
  /** Digests accepted, kept until their minute is out of the window: no knock works twice. */
  private used = new Map<string, number>();
  private window = { second: 0, count: 0, skipped: 0 };
  /** Checks per source in the current second (cleared each second: bounded by MAX_PER_SECOND). */
  private perSource = new Map<string, number>();
  private chain: Promise<unknown> = Promise.resolve();
  /** Reads of the applied rules: kept on failure and retried; a newer read supersedes a retry. */
  private readonly reads: RetriedRead<SpaRule[]>;
  /** Tests: called with each knock's outcome once the kernel holds it. */
  onOutcome?: (o: KnockOutcome & { rule: string }) => void;

  constructor(
    private readonly driver: DriverOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    private readonly store?: SpaUsedStore,
    /**
     * After a failed read of the applied policy's rules (the render worker could not answer),
     * the rules held stay and the read is tried again after `firstMs`, doubling up to `maxMs`,
     * until it succeeds or an apply reads them anew (retried-read.ts).
     */
    retry: ReadRetry = READ_RETRY,
  ) {
    this.reads = new RetriedRead<SpaRule[]>(
      {
        use: (rules, attempt) => {
          this.configure(rules);
          if (attempt > 1) this.log.info({ attempt, rules: this.ruleNames() }, "spa: applied spaKnock rules read");
        },
        failed: (e, attempt, retryInMs) =>
          this.log.error(
            { err: errorText(e), attempt, retryInMs, keptRules: this.ruleNames() },
            "spa: cannot read the applied policy's spaKnock rules; the rules held so far stay and it is tried " +
              "again. If it goes on, look for render worker errors above (out of memory: raise the host's memory; " +
              "an invalid applied.json: send the policy again) or restart the agent",
          ),
      },
      retry,
    );
  }

  /** Before the first knock: the digests a previous run accepted, still inside the window. */
  async load(): Promise<void> {
    if (!this.store) return;
    try {
      const u = (await this.store.read()) ?? {};
      for (const [d, m] of Object.entries(u)) this.used.set(d, m);
      this.forget(Math.floor(this.now() / 60_000));
    } catch (e) {
      // Unreadable: knocks accepted in the last two minutes could be replayed once; say so.
      this.log.warn({ err: errorText(e) }, "spa: accepted knocks of the last run unreadable; starting empty");
    }
  }

  /** The rules of the policy the kernel holds now (after every apply, rollback and at start). */
  configure(rules: SpaRule[]): void {
    this.rules = new Map(rules.map((r) => [r.name, r]));
  }

  /** The names of the rules knocks are checked against now. */
  ruleNames(): string[] {
    return [...this.rules.keys()];
  }

  /**
   * The applied policy's rules from `applied` (at start and after each apply). When it fails
   * the rules held stay (an empty set would close every knock-protected port until the next
   * policy) and it is tried again with backoff in the background; resolves after the first
   * try, true if it read the rules.
   */
  refresh(applied: () => Promise<SpaRule[]>): Promise<boolean> {
    return this.reads.read(applied);
  }

  /** Stops a pending retry (shutdown). */
  stop(): void {
    this.reads.cancel();
  }

  /**
   * Around one apply: the kernel may hold the new version from its first statement until it
   * commits or rolls back, so knocks are checked against its rules and the applied ones
   * (the new version's win on a shared name); afterwards against what applied.json says
   * the kernel kept (refresh: on a failed read the rules held during the apply stay, and it
   * is tried again). The applied rules that cannot be read are the ones held. When the
   * apply did not commit (`apply` resolved false: failed or rolled back; or it threw) the
   * kernel holds the version before it again, so until a read succeeds knocks are checked
   * against the rules of before the apply, not the merged ones (the new version's secret
   * would refuse correct knocks on a shared name).
   */
  async whileApplying(
    next: () => Promise<SpaRule[]>,
    apply: () => Promise<boolean | undefined>,
    applied: () => Promise<SpaRule[]>,
  ): Promise<void> {
    this.reads.cancel();
    const held = [...this.rules.values()];
    const before = await applied().catch((e) => {
      this.log.warn(
        { err: errorText(e), keptRules: held.map((r) => r.name) },
        "spa: cannot read the applied policy's spaKnock rules before an apply; the rules held stay",
      );
      return held;
    });
    const upcoming = await next().catch((e) => {
      this.log.warn(
        { err: errorText(e) },
        "spa: cannot read the new policy's spaKnock rules; during its apply knocks are checked against the applied ones",
      );
      return [] as SpaRule[];
    });
    this.configure([...before, ...upcoming]);
    let committed = false;
    try {
      committed = (await apply()) !== false;
    } finally {
      if (!committed) this.configure(before);
      await this.refresh(applied);
    }
  }

  /** Every NFLOG packet passes here; only spaKnock knocks are acted on. */
  onPacket(p: NflogPacket): void {
    const prefix = spaLogPrefix("");
    if (!p.prefix.startsWith(prefix)) return;
    const name = p.prefix.slice(prefix.length);
    const sec = Math.floor(this.now() / 1000);
    if (this.window.second !== sec) {
      if (this.window.skipped > 0)
        this.log.warn({ skipped: this.window.skipped }, "spa knocks over the rate cap were not checked");
      this.window = { second: sec, count: 0, skipped: 0 };
      this.perSource.clear();
    }
    const source = decodeIp(p.payload).saddr;
    const fromSource = (this.perSource.get(source) ?? 0) + 1;
    const underPressure = this.window.count >= MAX_PER_SECOND / 2;
    if ((underPressure && fromSource > PER_SOURCE_PER_SECOND) || this.window.count >= MAX_PER_SECOND) {
      this.window.skipped++;
      return;
    }
    this.perSource.set(source, fromSource);
    this.window.count++;
    const outcome = this.verify(name, p.payload);
    const run = this.chain.then(() => this.act(name, outcome));
    this.chain = run.catch(() => undefined);
  }

  /** Resolves when every knock seen so far reached the kernel. */
  idle(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  verify(name: string, packet: Buffer | undefined): KnockOutcome {
    const ip = parseUdp4(packet);
    if ("refused" in ip) return { kind: "refused", source: ip.source, reason: ip.refused };
    const rule = this.rules.get(name);
    if (!rule)
      return { kind: "refused", source: ip.source, reason: `no spaKnock rule "${name}" in the applied policy` };
    const text = knockText(ip.data);
    if (!text) return { kind: "refused", source: ip.source, reason: "payload is not 64 hex digits" };
    const minute = Math.floor(this.now() / 60_000);
    this.forget(minute);
    for (const m of [minute, minute - 1]) {
      for (const kind of ["open", "close"] as const) {
        const want = knockDigest(kind === "open" ? rule.openSecret : rule.closeSecret, ip.source, m);
        if (!timingSafeEqual(Buffer.from(want), Buffer.from(text))) continue;
        if (this.used.has(want)) return { kind: "refused", source: ip.source, reason: `replayed ${kind} knock` };
        this.used.set(want, m);
        return { kind, source: ip.source };
      }
    }
    return {
      kind: "refused",
      source: ip.source,
      reason: "wrong secret, or the sender's clock is off by over a minute",
    };
  }

  /** Write the accepted digests still inside the window to the store. */
  async persist(): Promise<void> {
    this.forget(Math.floor(this.now() / 60_000));
    await this.store?.write(Object.fromEntries(this.used));
  }

  private forget(minute: number): void {
    for (const [d, m] of this.used) if (m < minute - 1) this.used.delete(d);
  }

  private async act(name: string, o: KnockOutcome): Promise<void> {
    if (o.kind === "refused") {
      this.log.warn({ rule: name, source: o.source, reason: o.reason }, "spa knock refused");
      this.onOutcome?.({ ...o, rule: name });
      return;
    }
    // Durable before the port opens: after a crash here the knock is spent, never replayable.
    if (this.store) {
      try {
        await this.persist();
      } catch (e) {
        this.log.error(
          { rule: name, source: o.source, err: errorText(e) },
          "spa knock verified but not applied: cannot record it in the state dir (it could be replayed after a restart)",
        );
        this.onOutcome?.({ kind: "refused", source: o.source, reason: "state dir not writable", rule: name });
        return;
      }
    }
    const set = `recent_${spaList(name)}_v4`;
    // add-then-delete closes whether or not the source is listed, without an error either way.
    const text =
      o.kind === "open"
        ? `add element inet palisade ${set} { ${o.source} }\n`
        : `add element inet palisade ${set} { ${o.source} }\ndelete element inet palisade ${set} { ${o.source} }\n`;
    try {
      await kernel.apply(text, this.driver);
      this.log.info({ rule: name, source: o.source }, o.kind === "open" ? "spa knock opened" : "spa knock closed");
    } catch (e) {
      this.log.error({ rule: name, source: o.source, err: errorText(e) }, "spa knock verified but not applied");
    }
    this.onOutcome?.({ ...o, rule: name });
  }
}

/** The source and UDP payload of a whole IPv4/UDP datagram; why not, otherwise. */
function parseUdp4(p: Buffer | undefined): { source: string; data: Buffer } | { source: string; refused: string } {
  const ip = decodeIp(p);
  const source = ip.saddr;
  if (!p || ip.family !== 4 || ip.proto !== 17)
    return { source, refused: "not an IPv4 UDP packet (knocks are IPv4, as in pknock)" };
  if (ip.fragment) return { source, refused: "a fragment (a knock is one whole datagram)" };
  if (ip.l4Offset === undefined || p.length < ip.l4Offset + 8) return { source, refused: "IPv4 UDP header cut short" };
  return { source, data: p.subarray(ip.l4Offset + 8) };
}

function knockText(data: Buffer): string | undefined {
  let n = data.length;
  if (n === 65 && (data[64] === 0 || data[64] === 10)) n = 64;
  if (n !== 64) return undefined;
  const text = data.subarray(0, 64).toString("latin1");
  return /^[0-9a-f]{64}$/.test(text) ? text : undefined;
}
