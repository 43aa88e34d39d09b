// `palisade account`: iptaccount(8) for the whole fleet, over the REST API.
//   -a            list the accounting tables (iptaccount -a)
//   -l NAME       show a table's per-address counters (iptaccount -l)
//   -f            flush: show the counters since the mark, then move the mark to now
//   -c            loop every second (Ctrl-C ends it; --count N bounds it)
//   --host, --from, --to (1h, 2d back or RFC 3339), -o json|yaml (--json: one JSON object
//   per run; yaml: one document per run); --server/--token/--context as
//   every API verb (--url is the older name of --server).
// The API keeps every sample, so "flush" cannot zero the kernel table as iptaccount -f
// does; it moves a counted-since mark instead. Marks are kept per OS user in
// $PALISADE_STATE_DIR (default ~/.config/palisade)/account-marks.json, keyed by server
// URL, table and host filter: each user's -f windows tile time without gaps or overlap.
// They are sample times, so a batch an agent spooled during an outage and delivered
// after the next -f is counted in the window of its sample time (visible with --from/--to),
// not in the next -f.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { Option, type Command } from "commander";
import { stringify } from "yaml";
import { parseCount } from "../args.ts";
import { usageError } from "../errors.ts";
import { Rest, withRestOptions, type RestOptions } from "../rest.ts";
import { parseWhen } from "../time.ts";

interface Opts extends RestOptions {
  all?: boolean;
  list?: string;
  flush?: boolean;
  continuous?: boolean;
  count?: string;
  host?: string;
  from?: string;
  to?: string;
  json?: boolean;
  output?: string;
  url?: string;
}

type Counter = number | string;
interface Row {
  ip: string;
  unattributed: boolean;
  srcBytes: Counter;
  srcPackets: Counter;
  dstBytes: Counter;
  dstPackets: Counter;
}

/** The verb's view of the API: GET with a query, and every page of a list. */
class Api {
  constructor(private readonly rest: Rest) {}

  get<T>(path: string, query: Record<string, string | undefined>): Promise<T> {
    return this.rest.get<T>(path, query);
  }

  all<T>(path: string, query: Record<string, string | undefined>): Promise<T[]> {
    return this.rest.all<T>(path, query);
  }
}

const stateFile = () =>
  join(
    process.env.PALISADE_STATE_DIR || join(process.env.XDG_CONFIG_HOME || join(homedir(), ".config"), "palisade"),
    "account-marks.json",
  );

async function readMarks(): Promise<Record<string, string>> {
  try {
    return JSON.parse(await readFile(stateFile(), "utf8")) as Record<string, string>;
  } catch {
    return {};
  }
}

async function writeMark(key: string, at: string): Promise<void> {
  const file = stateFile();
  const marks = { ...(await readMarks()), [key]: at };
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(marks, null, 2) + "\n", { mode: 0o600 });
  await rename(tmp, file);
}

const isoTime = (s: string | undefined, flag: string) => parseWhen(s, flag);

const machine = (o: Opts) => o.json || o.output === "json" || o.output === "yaml";
function emit(o: Opts, value: unknown): void {
  process.stdout.write(o.output === "yaml" && !o.json ? `---\n${stringify(value)}` : JSON.stringify(value) + "\n");
}

const line = (r: Row) =>
  `IP: ${r.unattributed ? "(unattributed)" : r.ip} SRC packets: ${r.srcPackets} bytes: ${r.srcBytes} DST packets: ${r.dstPackets} bytes: ${r.dstBytes}`;

async function showTable(api: Api, name: string, o: Opts, run: number, url: string): Promise<void> {
  const key = `${url} ${name} ${o.host ?? "*"}`;
  const mark = o.flush && o.from === undefined ? (await readMarks())[key] : undefined;
  const from = isoTime(o.from, "--from") ?? mark;
  // A fixed `to` makes the flush window exact: the next one starts where this one ended.
  const to = isoTime(o.to, "--to") ?? new Date().toISOString();
  const rows = await api.all<Row>(`/v1/accounting/tables/${encodeURIComponent(name)}`, { host: o.host, from, to });
  if (machine(o)) emit(o, { table: name, run, from: from ?? null, to, rows });
  else {
    process.stdout.write(`Showing table: ${name}\nRun #${run} - ${rows.length} items found\n`);
    for (const r of rows) process.stdout.write(line(r) + "\n");
  }
  if (o.flush) await writeMark(key, to);
}

export function register(program: Command): void {
  withRestOptions(
    program
      .command("account")
      .description("per-address accounting of the fleet, like iptaccount: -a lists tables, -l NAME shows one")
      .option("-a, --all", "list all table names")
      .option("-l, --list <name>", "show data in table <name>")
      .option(
        "-f, --flush",
        "show the counters since the last flush, then move the mark (per user, table and host filter)",
      )
      .option("-c, --continuous", "loop every second (abort with Ctrl-C)")
      .option("--count <n>", "with -c: stop after n runs")
      .option("--host <host>", "only this host (id or name)")
      .option("--from <time>", "from this time (15m, 1h, 2d back, or RFC 3339)")
      .option("--to <time>", "until this time (same forms)")
      .option("--json", "one JSON object per run (same as -o json)")
      .addOption(
        new Option(
          "-o, --output <format>",
          "table (iptaccount's lines), json (one object per line and run) or yaml (one document per run)",
        )
          .choices(["table", "wide", "json", "yaml"])
          .default("table"),
      )
      .addOption(new Option("--url <url>", "older name of --server").hideHelp()),
  ).action(async (o: Opts) => {
    if (!o.all === !o.list) throw usageError("account: give exactly one of -a or -l NAME");
    const rest = new Rest({ ...o, server: o.server ?? o.url });
    const url = (await rest.resolve()).base;
    const api = new Api(rest);
    const count = o.count === undefined ? undefined : parseCount(o.count, "--count");
    let stop = false;
    const onSigint = () => {
      stop = true;
    };
    process.once("SIGINT", onSigint);
    try {
      for (let run = 0; ; run++) {
        if (o.all) {
          const tables = await api.all<{ name: string; hosts: number; lastAt: string }>("/v1/accounting/tables", {
            host: o.host,
          });
          if (machine(o)) emit(o, { run, tables });
          else for (const t of tables) process.stdout.write(`${t.name}\n`);
        } else await showTable(api, o.list!, o, run, url);
        if (!o.continuous || stop || (count !== undefined && run + 1 >= count)) break;
        await new Promise((r) => setTimeout(r, 1000));
        if (stop) break;
      }
    } finally {
      process.removeListener("SIGINT", onSigint);
    }
  });
}
