// Output of the listing and show verbs: `-o table` (default), `wide` (more columns),
// `json` or `yaml`. json and yaml print the API's objects unchanged (a list verb prints
// the array of every item, all pages followed), so scripts read what the API documents;
// tables are for people: aligned columns, relative times, "-" for nothing.
import { Option, type Command } from "commander";
import { stringify } from "yaml";
import { relative } from "./time.ts";

export const FORMATS = ["table", "wide", "json", "yaml"] as const;
export type Format = (typeof FORMATS)[number];

/** Adds -o/--output to a verb (and --json, kept as a short way to say -o json). */
export function withOutput(cmd: Command): Command {
  return cmd
    .addOption(new Option("-o, --output <format>", "table, wide, json or yaml").choices(FORMATS).default("table"))
    .addOption(new Option("--json", "same as -o json").hideHelp());
}

export function formatOf(o: { output?: string; json?: boolean }): Format {
  return o.json ? "json" : ((o.output ?? "table") as Format);
}

export interface Column<T> {
  header: string;
  value(item: T, now: number): string | number | boolean | null | undefined;
  /** Shown with -o wide only. */
  wide?: boolean;
}

/** A time column: relative in tables. */
export const when = <T>(header: string, get: (t: T) => string | null | undefined, wide = false): Column<T> => ({
  header,
  value: (t, now) => relative(get(t), now),
  wide,
});

/** Rows of cells as lines of aligned columns (two spaces apart; the last column unpadded). */
export function aligned(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
}

export function table<T>(items: T[], columns: Column<T>[], wide = false, now = Date.now()): string {
  const cols = columns.filter((c) => wide || !c.wide);
  const cell = (v: unknown) => (v === null || v === undefined || v === "" ? "-" : String(v).replace(/\s*\n\s*/g, " "));
  const rows = [cols.map((c) => c.header), ...items.map((i) => cols.map((c) => cell(c.value(i, now))))];
  return (
    aligned(rows)
      .map((l) => l.trimEnd())
      .join("\n") + "\n"
  );
}

export const out = (text: string) => void process.stdout.write(text);

export function data(value: unknown, format: "json" | "yaml"): string {
  return format === "json" ? JSON.stringify(value, null, 2) + "\n" : stringify(value, { lineWidth: 0 });
}

/** A list: the items as a table, or the API's items as json/yaml. */
export function printList<T>(items: T[], columns: Column<T>[], format: Format): void {
  if (format === "json" || format === "yaml") out(data(items, format));
  else out(table(items, columns, format === "wide"));
}

/** One object: `lines` for people, or the API's object as json/yaml. */
export function printOne<T>(item: T, format: Format, lines: (item: T, wide: boolean) => string[]): void {
  if (format === "json" || format === "yaml") out(data(item, format));
  else out(lines(item, format === "wide").join("\n") + "\n");
}

/** k=v,k2=v2 */
export const labelText = (labels: Record<string, string> | null | undefined) =>
  Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
