// Runs each line's importer, turning its result or its ImportLineError into a pending report
// entry; lines that refer to later lines (mfw, MASQ) are resolved in phases afterwards.
import { ImportLineError, type ImportErrorCode } from "./cursor.ts";
import type { ReportTarget } from "./draft.ts";
import type { LineResult } from "./draft.ts";
import type { Deferred, Outcome } from "./ipmasqadm.ts";

export interface PendingEntry {
  line: number;
  text: string;
  status: "imported" | "lifted" | "skipped" | "error";
  target?: ReportTarget;
  reason?: string;
  token?: string;
  code?: ImportErrorCode | "import_internal";
  /** The entry is a line of the `ipset save` text given beside the source (not of the source). */
  input?: "ipsets";
  /** Lines of a command after its first (backslash continuations) copy its outcome. */
  continuationOf?: PendingEntry;
}

export class Collector {
  readonly entries: PendingEntry[] = [];
  private readonly deferred: Array<{ entry: PendingEntry; d: Deferred }> = [];

  add(line: number, text: string, fn: () => Outcome | LineResult): PendingEntry {
    const entry: PendingEntry = { line, text, status: "skipped" };
    this.entries.push(entry);
    this.settle(entry, fn);
    return entry;
  }

  note(
    line: number,
    text: string,
    status: PendingEntry["status"],
    reason: string,
    extra: Partial<PendingEntry> = {},
  ): PendingEntry {
    const entry: PendingEntry = { line, text, status, reason, ...extra };
    this.entries.push(entry);
    return entry;
  }

  private settle(entry: PendingEntry, fn: () => Outcome | LineResult): void {
    try {
      const out = fn();
      if ("deferred" in out) {
        this.deferred.push({ entry, d: out.deferred });
        return;
      }
      Object.assign(entry, out);
    } catch (e) {
      entry.status = "error";
      if (e instanceof ImportLineError) {
        entry.reason = e.message;
        entry.code = e.code;
        if (e.token !== undefined) entry.token = e.token;
      } else {
        // A bug in the importer must not lose the line: report it like any other error.
        entry.reason = `internal importer error: ${e instanceof Error ? e.message : String(e)}`;
        entry.code = "import_internal";
      }
    }
  }

  /** Resolve deferred lines, phase by phase, in source order within a phase. */
  resolveDeferred(): void {
    for (const phase of [1, 2] as const) {
      for (const { entry, d } of this.deferred) if (d.phase === phase) this.settle(entry, d.resolve);
    }
  }
}
