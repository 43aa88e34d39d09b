// A CLI verb's integration fixture: a real app (app.ts) listening on a loopback port,
// hosts made in its database, the real bin/palisade run as a child process against it,
// and what the API publishes on the hosts' Redis channels while a command runs.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROLE_TOKENS, startTestApp, type TestApp } from "./app.ts";
import { published } from "./host-channels.ts";

const run = promisify(execFile);
const BIN = join(import.meta.dirname, "../../bin/palisade");

export type HostData = Parameters<TestApp["db"]["host"]["create"]>[0]["data"];

export interface CliRun {
  /** The exit status (0 on success). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliApp {
  t: TestApp;
  /** The API's base URL. */
  url: string;
  /** Host ids by name. */
  ids: Record<string, string>;
  /** `palisade VERB ...args --server URL` with `token` (default the operator's); never throws on exit status. */
  cli(args: string[], token?: string): Promise<CliRun>;
  /** What each host's channel receives while `fn` runs, by host name. */
  published(fn: () => Promise<unknown>): Promise<Record<string, unknown[]>>;
  close(): Promise<void>;
}

export async function openCliApp(o: { verb: string; hosts: HostData[] }): Promise<CliApp> {
  const t = await startTestApp();
  try {
    const url = await t.app.listen({ host: "127.0.0.1", port: 0 });
    const ids: Record<string, string> = {};
    for (const data of o.hosts) ids[data.name] = (await t.db.host.create({ data })).id;
    return {
      t,
      url,
      ids,
      async cli(args, token = ROLE_TOKENS.operator) {
        try {
          const r = await run(process.execPath, [BIN, o.verb, ...args, "--server", url], {
            env: { ...process.env, PALISADE_TOKEN: token },
            timeout: 60_000,
          });
          return { code: 0, stdout: r.stdout, stderr: r.stderr };
        } catch (e) {
          const x = e as CliRun;
          return { code: x.code, stdout: x.stdout, stderr: x.stderr };
        }
      },
      published: (fn) => published(ids, fn),
      close: () => t.close(),
    };
  } catch (e) {
    await t.close();
    throw e;
  }
}
