// Country sets of the geoip match (docs/geoip.md): the policy's rules test
// `ip saddr @geo_v4_CC` / `ip6 saddr @geo_v6_CC`, interval sets in the policy table that the
// compiler declares empty and this keeper fills with what the API sends. The API owns the
// data; the agent asks for the countries its kernel's sets need (GeoIpRequest, with the
// revision it holds of each) after every kernel change of the policy and after every Hello,
// and gets whole countries or element deltas (GeoIpUpdate). A change is one nft transaction
// of element statements under the applier's lock: never an apply, no rule or handle changes.
//
// The keeper holds every country it was sent (canonical interval text per family), so:
// - after every kernel change of the policy (apply, carry, rollback, drift repair) all geo
//   sets are refilled from it (flush + add, one transaction): a set a new version brings is
//   filled at once, and a rollback to a snapshot taken before a data change cannot keep old ranges;
// - a delta the kernel refuses (its set no longer holds what the delta deletes) is followed
//   by a refill of that country's sets from the keeper, which is what the API holds.
//
// What it holds is kept in the state dir (geoip.json, geoip-state.ts) after every change and
// read at start, before a reboot's restore refills the sets: with the API unreachable the
// restored policy's countries are filled from it, and the first request after a Hello asks
// for deltas from the revisions it holds. A bad file is ignored whole, with a warning.
import { readFile } from "node:fs/promises";
import { driver as kernel, geoip, type DriverOptions } from "../engine/index.ts";
import { errorText } from "./errors.ts";
import { writeFileAtomic } from "./atomic.ts";
import { parseGeoState, serializeGeoState } from "./geoip-state.ts";
import type { Logger } from "../runtime/log.ts";
import type { GeoIpRequest, GeoIpUpdate } from "../protocol/agent.ts";

const FAMILY = "inet";
const TABLE = "palisade";
const FAMS = ["ipv4", "ipv6"] as const;

interface Held {
  revision: number;
  ipv4: Set<string>;
  ipv6: Set<string>;
}

export interface GeoApplied {
  /** Countries whose sets this transaction changed. */
  countries: string[];
  full: boolean;
  /** Elements added + deleted. */
  elements: number;
  nftMs: number;
}

export class GeoKeeper {
  private readonly data = new Map<string, Held>();
  /** Geo set names the policy table has (read at every resync); undefined = read them first. */
  private sets: Set<string> | undefined;
  /** Tests and benches: called after each change reached the kernel. */
  onApplied?: (r: GeoApplied) => void;
  /** Writes of the state file, one after another; `dirty`: the data changed since the last one began. */
  private saving: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(
    private readonly driver: DriverOptions,
    /** The applier's lock: a change never runs in the middle of an apply or rollback. */
    private readonly exclusive: <T>(fn: () => Promise<T>) => Promise<T>,
    private readonly log: Logger,
    /** Sends a GeoIpRequest on the stream (false: no stream now; the next Hello asks again). */
    private readonly send: (m: GeoIpRequest) => boolean,
    /** Where the data is kept across restarts (geoip.json in the state dir; undefined: not kept). */
    private readonly file?: string,
  ) {}

  /**
   * Read the data the last run kept (at start, before a reboot's restore resyncs the sets).
   * A file that cannot be read or is not entirely valid is ignored with a warning: the
   * countries are then asked for whole, as with no file.
   */
  async load(): Promise<number> {
    if (!this.file) return 0;
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        this.log.warn(
          { err: errorText(e), file: this.file },
          "geoip state file not read; ignored, the countries are asked for whole",
        );
      return 0;
    }
    const r = parseGeoState(text);
    if (!r.ok) {
      this.log.warn(
        { err: r.error, file: this.file, bytes: Buffer.byteLength(text) },
        "geoip state file is corrupt or truncated; ignored, the countries are asked for whole",
      );
      return 0;
    }
    // The API's data may already have come: it is newer than the file.
    if (this.data.size > 0) return 0;
    for (const [c, h] of r.value)
      this.data.set(c, { revision: h.revision, ipv4: new Set(h.ipv4), ipv6: new Set(h.ipv6) });
    this.log.info(
      { file: this.file, countries: Object.fromEntries([...r.value].map(([c, h]) => [c, h.revision])) },
      "geoip data read from the state file",
    );
    return r.value.size;
  }

  /** Tests: the state file's writes so far are done. */
  saved(): Promise<void> {
    return this.saving;
  }

  /** Write the data held now (after the pending write, if any; changes in between share one write). */
  private save(): void {
    if (!this.file) return;
    const file = this.file;
    if (this.dirty) return; // a queued write not begun yet will take this change too
    this.dirty = true;
    this.saving = this.saving.then(async () => {
      this.dirty = false;
      try {
        await writeFileAtomic(file, serializeGeoState(this.data), 0o600);
      } catch (e) {
        this.log.error(
          { err: errorText(e), file },
          "geoip state not kept in the state dir; a reboot with the API away would leave country sets empty",
        );
      }
    });
  }

  /** The countries the kernel's sets need, with the revision held of each. */
  private request(): GeoIpRequest {
    const countries = new Set([...(this.sets ?? [])].map((s) => geoip.geoOfSet(s)!.country));
    return {
      countries: [...countries].sort().map((c) => ({ country: c, revision: String(this.data.get(c)?.revision ?? 0) })),
    };
  }

  /** After a Hello: tell the API what the kernel's sets need. */
  async connected(): Promise<void> {
    try {
      if (this.sets === undefined) await this.exclusive(() => this.readSets());
      this.send(this.request());
    } catch (e) {
      this.log.error({ err: errorText(e) }, "geoip sets not read; countries not requested");
    }
  }

  /** After a kernel change of the policy (inside the applier's lock): refill every geo set, then ask for what is missing. */
  async resync(): Promise<void> {
    try {
      await this.readSets();
      const changes: geoip.GeoSetChange[] = [];
      for (const s of this.sets!) {
        const g = geoip.geoOfSet(s)!;
        const held = this.data.get(g.country);
        // A country not received yet (a restart with the API away): the kernel's elements are the best guess.
        if (held) changes.push({ family: g.family, country: g.country, full: true, add: [...held[g.family]], del: [] });
      }
      try {
        await this.applyText(changes, true);
      } catch (e) {
        this.forget(changes, e);
      }
      this.send(this.request());
    } catch (e) {
      this.log.error({ err: errorText(e) }, "geoip sets not refilled after a kernel change");
    }
  }

  /**
   * A refill from the held data that the kernel refused: the held revisions would make the
   * API send nothing (they match its own), leaving the sets as they are. Forget those
   * countries so the next request asks for them whole.
   */
  private forget(changes: readonly geoip.GeoSetChange[], e: unknown): void {
    const countries = [...new Set(changes.map((c) => c.country))].sort();
    for (const c of countries) this.data.delete(c);
    this.log.error(
      { err: errorText(e), countries },
      "geoip sets not refilled from the held data; those countries are asked for whole",
    );
    this.save();
  }

  /** The API's data: recorded at once, then written to the kernel's sets (under the applier's lock). */
  update(m: GeoIpUpdate): Promise<GeoApplied | undefined> {
    const changes: geoip.GeoSetChange[] = [];
    const refill: string[] = [];
    for (const c of m.countries) {
      if (!geoip.COUNTRY_RE.test(c.country)) {
        this.log.error({ country: c.country }, "country code from the API is not valid; ignored");
        continue;
      }
      const revision = Number(c.revision);
      const held = this.data.get(c.country);
      if (c.full) {
        this.data.set(c.country, { revision, ipv4: new Set(c.ipv4Add), ipv6: new Set(c.ipv6Add) });
        for (const f of FAMS)
          changes.push({
            family: f,
            country: c.country,
            full: true,
            add: f === "ipv4" ? c.ipv4Add : c.ipv6Add,
            del: [],
          });
        continue;
      }
      if (!held || held.revision !== Number(c.fromRevision)) {
        // Not the base the delta was made for: drop the country and ask for it whole.
        this.data.delete(c.country);
        refill.push(c.country);
        continue;
      }
      for (const d of c.ipv4Del) held.ipv4.delete(d);
      for (const d of c.ipv6Del) held.ipv6.delete(d);
      for (const a of c.ipv4Add) held.ipv4.add(a);
      for (const a of c.ipv6Add) held.ipv6.add(a);
      held.revision = revision;
      changes.push(
        { family: "ipv4", country: c.country, full: false, add: c.ipv4Add, del: c.ipv4Del },
        { family: "ipv6", country: c.country, full: false, add: c.ipv6Add, del: c.ipv6Del },
      );
    }
    if (refill.length) this.send(this.request());
    this.log.info(
      {
        countries: m.countries.map((c) => ({
          country: c.country,
          revision: Number(c.revision),
          ...(c.full ? { full: true } : { fromRevision: Number(c.fromRevision) }),
        })),
      },
      "geoip data received",
    );
    return this.exclusive(async () => {
      if (this.sets === undefined) await this.readSets();
      return this.applyText(changes, false);
    })
      .catch((e) => {
        this.log.error({ err: errorText(e) }, "geoip update not applied to the kernel");
        return undefined;
      })
      .finally(() => {
        // After the kernel: a crash in between leaves the file behind the kernel, and the
        // delta asked from the file's revision is then refused and refilled (never stale sets).
        this.save();
      });
  }

  /** Tests: the countries held and their revisions. */
  held(): Record<string, number> {
    return Object.fromEntries([...this.data].map(([c, h]) => [c, h.revision]));
  }

  private async applyText(all: geoip.GeoSetChange[], full: boolean): Promise<GeoApplied> {
    const t0 = performance.now();
    const present = (c: geoip.GeoSetChange) => this.sets!.has(geoip.geoSetName(c.family, c.country));
    const changes = all.filter(present);
    const text = geoip.geoSyncText(FAMILY, TABLE, changes);
    try {
      if (text) await kernel.apply(text, this.driver);
    } catch (e) {
      if (changes.every((c) => c.full)) throw e;
      // The kernel's sets differ from what the deltas assume (changed behind the agent): refill
      // the countries from what the keeper holds, which is the API's data.
      this.log.warn({ err: errorText(e) }, "geoip delta refused by the kernel; refilling those countries");
      await this.readSets();
      const again = changes.filter(present).map((c) => {
        const held = this.data.get(c.country);
        return { ...c, full: true, add: held ? [...held[c.family]] : [], del: [] };
      });
      const t = geoip.geoSyncText(FAMILY, TABLE, again);
      try {
        if (t) await kernel.apply(t, this.driver);
      } catch (e2) {
        this.forget(again, e2);
        this.send(this.request());
        throw e2;
      }
    }
    const out: GeoApplied = {
      countries: [...new Set(changes.map((c) => c.country))].sort(),
      full,
      elements: changes.reduce((n, c) => n + c.add.length + c.del.length, 0),
      nftMs: performance.now() - t0,
    };
    this.log.debug(out, "geoip sets changed");
    this.onApplied?.(out);
    return out;
  }

  private async readSets(): Promise<void> {
    this.sets = undefined;
    const sets = await kernel.listSetNames(FAMILY, this.driver).catch((e) => {
      // No policy table yet: no geo sets.
      if (/No such file|does not exist/i.test(errorText(e))) return [];
      throw e;
    });
    this.sets = new Set(
      sets.filter((s) => s.table === TABLE && geoip.geoOfSet(s.name) !== undefined).map((s) => s.name),
    );
  }
}
