// The agent's state dir. Everything here survives restarts:
//   credential.json  host id + credential (mode 0600: it is a secret) and how the host enrolled
//                    (mtls or plaintext: an mtls host without tls.json refuses to start)
//   tls.json         mutual TLS: the agent's private key, its client certificate and the
//                    CA (mode 0600; one file so a renewal replaces key and certificate at once)
//   epoch            telemetry epoch; a new state dir = a new counter baseline
//   applied.json     last applied version, its policy JSON and rendered text (mode 0600:
//                    the policy holds spaKnock secrets)
//   pending.json     (mode 0600) an apply waiting for its Confirm: the target and the snapshot to roll
//                    back to. Written before the kernel changes, removed once the apply is
//                    committed (applied.json names its target) or rolled back; an agent that
//                    starts with it present rolls back first (recover.ts)
//   api-addresses.json  the last addresses the API name resolved to (mode 0600): the failsafe
//                    uses them when the name does not resolve (desired.ts)
//   geoip.json       (mode 0600) the country data the agent holds, per country its revision and
//                    intervals, so a reboot with the API away refills the country sets (geoip-state.ts)
//   spool/           telemetry batches not yet acknowledged (see telemetry/spool.ts)

import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Snapshot } from "../engine/index.ts";
import { writeFileAtomic } from "./atomic.ts";
import { AgentError } from "./errors.ts";

export const Credential = z.object({
  hostId: z.string().min(1),
  hostName: z.string(),
  credential: z.string().min(1),
  /**
   * How this host enrolled: "mtls" means tls.json must be there (never fall back to the
   * bearer credential over plaintext). Absent: written by an agent before this was
   * recorded; the first start records it from whether tls.json is there.
   */
  channel: z.enum(["mtls", "plaintext"]).optional(),
});
export type Credential = z.infer<typeof Credential>;

export const TlsMaterial = z.object({
  keyPem: z.string().min(1),
  certPem: z.string().min(1),
  caPem: z.string().min(1),
  /**
   * A host upgraded from plaintext: the mutual TLS agent address the API named (HOST:PORT),
   * used instead of --server while --server is still `upgradedFrom` (the legacy port).
   */
  server: z.string().min(1).optional(),
  upgradedFrom: z.string().min(1).optional(),
});
export type TlsMaterial = z.infer<typeof TlsMaterial>;

export const AppliedState = z.object({
  ruleset: z.string(),
  version: z.number().int().min(0),
  checksum: z.string(),
  policyJson: z.string(),
  /** The nft text that was applied (what drift restores). */
  text: z.string(),
  appliedAt: z.string(),
  /** The deployment target this apply answered (absent: written by an older agent). */
  deploymentId: z.string().optional(),
  targetId: z.string().optional(),
});
export type AppliedState = z.infer<typeof AppliedState>;

const VersionRef = z.object({ ruleset: z.string(), version: z.number().int().min(0), checksum: z.string() });

const SnapshotShape = z.object({
  tables: z.array(z.object({ family: z.string(), name: z.string() }).passthrough()),
  text: z.string(),
  takenAt: z.string(),
});

/** An apply whose Confirm has not arrived yet (pending.json). */
export const PendingApply = z.object({
  deploymentId: z.string(),
  targetId: z.string(),
  /** DesiredState.attempt, echoed in the result recovery reports (absent: an older agent wrote it). */
  attempt: z.number().int().min(0).optional(),
  version: VersionRef,
  /** Palisade's tables before the apply: what a rollback puts back (driver Snapshot). */
  snapshot: z.custom<Snapshot>((v) => SnapshotShape.safeParse(v).success, "not a ruleset snapshot"),
  startedAt: z.string(),
});
export type PendingApply = z.infer<typeof PendingApply>;

/** The last successful resolution of the API's host name (api-addresses.json). */
export const ResolvedApi = z.object({
  host: z.string().min(1),
  addresses: z.array(z.string().min(1)).min(1),
  /** When the name last resolved to these addresses (rewritten at most hourly while unchanged). */
  resolvedAt: z.string(),
});
export type ResolvedApi = z.infer<typeof ResolvedApi>;

/** spa-used.json: accepted knock digests and the minute each was for (bounded: two minutes' worth). */
export const SpaUsed = z
  .record(z.string().regex(/^[0-9a-f]{64}$/), z.number().int())
  .refine((u) => Object.keys(u).length <= 100_000, "too many entries");
export type SpaUsed = z.infer<typeof SpaUsed>;

export class StateDir {
  constructor(readonly dir: string) {}

  static async open(dir: string): Promise<StateDir> {
    try {
      await mkdir(join(dir, "spool"), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new AgentError("state_error", `cannot create state dir ${dir}: ${(e as Error).message}`, { cause: e });
    }
    return new StateDir(dir);
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  get spoolDir(): string {
    return this.path("spool");
  }

  private async readJson<T>(name: string, schema: z.ZodType<T>): Promise<T | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(name), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new AgentError("state_error", `cannot read ${this.path(name)}: ${(e as Error).message}`, { cause: e });
    }
    const r = schema.safeParse(JSON.parse(text));
    if (!r.success)
      throw new AgentError("state_error", `${this.path(name)} is corrupt: ${r.error.issues[0]?.message ?? "invalid"}`);
    return r.data;
  }

  readCredential(): Promise<Credential | undefined> {
    return this.readJson("credential.json", Credential);
  }

  async writeCredential(c: Credential): Promise<void> {
    await writeFileAtomic(this.path("credential.json"), JSON.stringify(c), 0o600);
  }

  readTls(): Promise<TlsMaterial | undefined> {
    return this.readJson("tls.json", TlsMaterial);
  }

  /** The private key never leaves the host: this file is the only place it is written. */
  async writeTls(t: TlsMaterial): Promise<void> {
    await writeFileAtomic(this.path("tls.json"), JSON.stringify(t), 0o600);
  }

  /** Mode bits of the credential file (tests assert 0600). */
  async credentialMode(): Promise<number> {
    return (await stat(this.path("credential.json"))).mode & 0o777;
  }

  /** The telemetry epoch, created on first use. */
  async epoch(): Promise<string> {
    try {
      const e = (await readFile(this.path("epoch"), "utf8")).trim();
      if (e.length > 0) return e;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        throw new AgentError("state_error", `cannot read epoch: ${(e as Error).message}`);
    }
    const fresh = randomUUID();
    await writeFileAtomic(this.path("epoch"), fresh + "\n");
    return fresh;
  }

  readApplied(): Promise<AppliedState | undefined> {
    return this.readJson("applied.json", AppliedState);
  }

  async writeApplied(a: AppliedState): Promise<void> {
    await writeFileAtomic(this.path("applied.json"), JSON.stringify(a), 0o600);
  }

  readResolvedApi(): Promise<ResolvedApi | undefined> {
    return this.readJson("api-addresses.json", ResolvedApi);
  }

  /** 0600: where the API lives is nothing for other local users to read. */
  async writeResolvedApi(r: ResolvedApi): Promise<void> {
    await writeFileAtomic(this.path("api-addresses.json"), JSON.stringify(r), 0o600);
  }

  /** spaKnock digests already accepted, with their minute: a restart must not let one work twice. */
  readSpaUsed(): Promise<SpaUsed | undefined> {
    return this.readJson("spa-used.json", SpaUsed);
  }

  async writeSpaUsed(u: SpaUsed): Promise<void> {
    await writeFileAtomic(this.path("spa-used.json"), JSON.stringify(u), 0o600);
  }

  readPending(): Promise<PendingApply | undefined> {
    return this.readJson("pending.json", PendingApply);
  }

  /** Durable before the kernel changes: a crash after it leaves the way back on disk. */
  async writePending(p: PendingApply): Promise<void> {
    await writeFileAtomic(this.path("pending.json"), JSON.stringify(p), 0o600);
  }

  /** Removing needs no free space, so this works on a full disk too. */
  async clearPending(): Promise<void> {
    await rm(this.path("pending.json"), { force: true });
  }
}
