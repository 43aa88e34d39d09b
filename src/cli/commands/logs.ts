// `palisade logs`: packet log events the agents shipped (log rules, LOGMARK), oldest first.
// -f follows: the stream is opened first, then the recent events are listed, then new
// ones print as they arrive (events the list already showed are skipped by id), until
// Ctrl-C or --max-events. -o json with -f prints one JSON object per line. The server's
// `event: end` says why a stream ended: max_events is a normal end, anything else (token
// revoked, Redis lost, server closing) an error.
import type { Command } from "commander";
import { parseCount } from "../args.ts";
import { CliError, EXIT } from "../errors.ts";
import { data, formatOf, out, printList, when, withOutput, type Column, type Format } from "../output.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";
import { parseWhen } from "../time.ts";
import type { LogEventView } from "../../api/telemetry/channels.ts";

// The API's own type (type-only: erased from the bundle, nothing of the server is loaded).
export type LogEvent = LogEventView;

const f = (e: LogEvent, k: string) => e.fields[k];
const COLUMNS: Column<LogEvent>[] = [
  when("AT", (e) => e.at),
  { header: "HOST", value: (e) => e.host },
  { header: "PREFIX", value: (e) => e.prefix },
  { header: "IN", value: (e) => f(e, "iif") },
  { header: "OUT", value: (e) => f(e, "oif") },
  { header: "PROTO", value: (e) => f(e, "protocol") },
  { header: "SRC", value: (e) => f(e, "saddr") },
  { header: "SPORT", value: (e) => f(e, "sport") },
  { header: "DST", value: (e) => f(e, "daddr") },
  { header: "DPORT", value: (e) => f(e, "dport") },
  { header: "LEN", value: (e) => f(e, "length"), wide: true },
  { header: "MARK", value: (e) => e.mark, wide: true },
  { header: "ID", value: (e) => e.id, wide: true },
];

/** One event as a line for a followed stream (a table cannot align what has not come yet). */
export function eventLine(e: LogEvent): string {
  const fields = Object.entries(e.fields)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  return `${e.at} ${e.host} ${e.prefix}${fields ? ` ${fields}` : ""}${e.mark !== null ? ` mark=${e.mark}` : ""}`;
}

function streamed(e: LogEvent, format: Format): string {
  if (format === "json") return JSON.stringify(e) + "\n";
  if (format === "yaml") return "---\n" + data(e, "yaml");
  return eventLine(e) + "\n";
}

interface Opts extends RestOptions {
  host?: string;
  prefix?: string;
  mark?: string;
  since?: string;
  from?: string;
  to?: string;
  limit?: string;
  follow?: boolean;
  maxEvents?: string;
  output?: string;
  json?: boolean;
}

export function register(program: Command): void {
  withOutput(
    withRestOptions(
      program
        .command("logs")
        .description("packet log events of the fleet, oldest first; -f follows new ones live")
        .option("--host <host>", "only this host (id or name)")
        .option("--prefix <prefix>", "only events whose log prefix starts with this")
        .option("--mark <n>", "only events whose packet mark is this")
        .option("--since <when>", "from this long ago (15m, 1h, 2d) or this RFC 3339 time")
        .option("--from <when>", "same as --since")
        .option("--to <when>", "until this time (not with -f)")
        .option("--limit <n>", "the newest N events (default 100; with -f 10)")
        .option("-f, --follow", "keep printing new events as they arrive (Ctrl-C ends)")
        .option("--max-events <n>", "with -f: stop after this many new events"),
    ),
  ).action(async (o: Opts) => {
    const rest = new Rest(o);
    const format = formatOf(o);
    const filters = { host: o.host, prefix: o.prefix, mark: o.mark };
    const from = parseWhen(o.from ?? o.since, o.from ? "--from" : "--since");
    const to = parseWhen(o.to, "--to");
    const limit = parseCount(o.limit ?? (o.follow ? "10" : "100"), "--limit");
    const recent = async () => (await rest.all<LogEvent>("/v1/logs", { ...filters, from, to }, limit)).reverse();
    if (!o.follow) return printList(await recent(), COLUMNS, format);
    if (to !== undefined)
      throw new CliError("usage", "--to cannot be used with -f (a followed stream has no end time)", EXIT.usage);
    const maxEvents = o.maxEvents === undefined ? undefined : parseCount(o.maxEvents, "--max-events");

    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    let lastListed = -1n;
    let listed = false;
    const pending: LogEvent[] = [];
    const show = (e: LogEvent) => {
      if (BigInt(e.id) > lastListed) out(streamed(e, format));
    };
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    let endReason: string | undefined;
    const stream = rest.stream(
      "/v1/logs/stream",
      { ...filters, maxEvents },
      (text, event) => {
        // The server's last word: `event: end` with the reason (max_events, token_revoked, redis_unavailable, server_closing).
        if (event === "end") {
          endReason = text.trim();
          return;
        }
        if (event !== "log" && event !== "message") return;
        const e = JSON.parse(text) as LogEvent;
        if (listed) show(e);
        else pending.push(e);
      },
      abort.signal,
      opened,
    );
    try {
      // The list follows the subscription, so nothing falls between the two.
      const first = await Promise.race([open.then(() => "open" as const), stream]);
      if (first === "aborted") return;
      for (const e of await recent()) {
        out(streamed(e, format));
        if (BigInt(e.id) > lastListed) lastListed = BigInt(e.id);
      }
      listed = true;
      pending.splice(0).forEach(show);
      const end = await stream;
      if (end === "ended" && endReason !== "max_events") {
        if (endReason === "token_revoked")
          throw new CliError("unauthorized", "the token was revoked; the server ended the log stream", EXIT.denied);
        throw new CliError(
          "unavailable",
          `the server ended the log stream (${endReason ?? "closed without a reason"})`,
          EXIT.unavailable,
          [],
          "it was restarting, or lost Redis; run the command again",
        );
      }
    } finally {
      abort.abort();
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
    }
  });
}
