// The one HTTP client of the CLI's API verbs. Where it connects, in order: --server /
// --token; PALISADE_SERVER (or the older PALISADE_URL) / PALISADE_TOKEN; the context
// (--context, PALISADE_CONTEXT, or the config file's current-context, see contexts.ts);
// http://127.0.0.1:8080. A context's token is sent only to that context's server, never
// to a --server given beside it. API errors become RestError (a CliError with the
// envelope's code, message and details and the HTTP status), printed by errors.ts.
import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { selectContext } from "./contexts.ts";
import { CliError, EXIT, exitForCode, exitForStatus, type ErrorDetail } from "./errors.ts";
import { fetchWithCa, readCaFile } from "./https-ca.ts";

export interface RestOptions {
  server?: string;
  token?: string;
  context?: string;
  /** PEM CA that signed the server's HTTPS certificate (the only root trusted then). */
  caFile?: string;
}

export class RestError extends CliError {
  override name = "RestError";
  constructor(
    readonly status: number,
    code: string,
    message: string,
    details: ErrorDetail[] = [],
  ) {
    super(code, message, status && !exitKnown(code) ? exitForStatus(status) : exitForCode(code), details);
  }
}
const exitKnown = (code: string) => exitForCode(code) !== EXIT.generic;

/** Adds --server, --token and --context to a verb. */
export function withRestOptions(cmd: Command): Command {
  return cmd
    .option("--server <url>", "API base URL (env PALISADE_SERVER; default: the context's, else http://127.0.0.1:8080)")
    .option("--token <token>", "API bearer token (env PALISADE_TOKEN; default: the context's)")
    .option("--context <name>", "use this context of the config file (env PALISADE_CONTEXT)")
    .option(
      "--ca-file <file>",
      "PEM CA of the server's HTTPS certificate, trusted instead of the system's (env PALISADE_CA_FILE; default: the context's)",
    );
}

interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export type Query = Record<string, string | number | boolean | undefined>;

export class Rest {
  private target?: Promise<{ base: string; token: string | undefined; ca: string | undefined }>;

  constructor(
    private readonly o: RestOptions,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** The server URL, token and private CA (PEM) this client uses. */
  resolve(): Promise<{ base: string; token: string | undefined; ca: string | undefined }> {
    this.target ??= (async () => {
      const o = this.o;
      const env = this.env;
      const explicit = o.server ?? (env.PALISADE_SERVER || undefined) ?? (env.PALISADE_URL || undefined);
      const ctx =
        o.context !== undefined || !explicit || !(o.token ?? env.PALISADE_TOKEN)
          ? await selectContext(o.context, env)
          : undefined;
      const base = (explicit ?? ctx?.server ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
      if (!/^https?:\/\/[^/]/.test(base)) {
        throw new CliError(
          "usage",
          `the server must be an http(s) URL, got "${base}"`,
          EXIT.usage,
          [],
          "e.g. --server https://palisade.example:8080",
        );
      }
      const sameServer = ctx !== undefined && ctx.server.replace(/\/+$/, "") === base;
      const caFile = o.caFile ?? (env.PALISADE_CA_FILE || undefined) ?? (sameServer ? ctx["ca-file"] : undefined);
      if (caFile !== undefined && !base.startsWith("https://")) {
        throw new CliError(
          "usage",
          `a CA file (${caFile}) is given but the server ${base} is not https`,
          EXIT.usage,
          [],
          "use the https:// URL of the server, or drop --ca-file / PALISADE_CA_FILE",
        );
      }
      const ca = caFile === undefined ? undefined : await readCaFile(caFile);
      return { base, token: o.token ?? (env.PALISADE_TOKEN || undefined) ?? (sameServer ? ctx.token : undefined), ca };
    })();
    return this.target;
  }

  private async send(
    method: string,
    path: string,
    init: {
      body?: string;
      contentType?: string;
      accept?: string;
      signal?: AbortSignal;
      headers?: Record<string, string>;
    },
  ): Promise<Response> {
    const { base, token, ca } = await this.resolve();
    if (!token) throw new RestError(0, "unauthorized", `no API token for ${base}`);
    const headers: Record<string, string> = {
      ...init.headers,
      authorization: `Bearer ${token}`,
      accept: init.accept ?? "application/json",
    };
    if (init.body !== undefined) headers["content-type"] = init.contentType ?? "application/json";
    let res: Response;
    try {
      const req = { method, headers, body: init.body, signal: init.signal };
      res = ca === undefined ? await fetch(base + path, req) : await fetchWithCa(base + path, ca, req);
    } catch (e) {
      const why =
        (e as Error).name === "TimeoutError"
          ? "no answer in time"
          : ((e as { cause?: Error }).cause?.message ?? (e as Error).message);
      throw new RestError(0, "unreachable", `cannot reach ${base}: ${why}`);
    }
    if (!res.ok) {
      const text = await res.text();
      let env: { error?: { code?: string; message?: string; details?: ErrorDetail[] } } | undefined;
      try {
        env = JSON.parse(text) as typeof env;
      } catch {
        env = undefined;
      }
      const err = env?.error;
      throw new RestError(
        res.status,
        err?.code ?? `http_${res.status}`,
        err?.message ?? `HTTP ${res.status} ${(text.slice(0, 300) || res.statusText).trim()}`,
        err?.details ?? [],
      );
    }
    return res;
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    opts: { contentType?: string; timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const res = await this.send(method, path, {
      body: payload,
      contentType: opts.contentType,
      headers: opts.headers,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T>(path: string, query: Query = {}): Promise<T> {
    return this.request<T>("GET", withQuery(path, query));
  }

  /** Every item of a paged list, following nextCursor (at most `max` items). */
  async all<T>(path: string, query: Query = {}, max = Number.POSITIVE_INFINITY): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 100_000 && out.length < max; i++) {
      const page: Page<T> = await this.get<Page<T>>(path, { ...query, limit: Math.min(500, max - out.length), cursor });
      out.push(...page.items);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    return out;
  }

  /**
   * A Server-Sent Events stream: `onEvent` gets each event's data (the `data:` lines joined)
   * and type (`event:`, "message" when absent)
   * until the server ends the stream (resolves) or `signal` aborts (resolves too). `onOpen`
   * runs once the server answered (the API subscribes before it answers).
   */
  async stream(
    path: string,
    query: Query,
    onEvent: (data: string, event: string, id: string | undefined) => void,
    signal: AbortSignal,
    onOpen?: () => void,
  ): Promise<"ended" | "aborted"> {
    let res: Response;
    try {
      res = await this.send("GET", withQuery(path, query), { accept: "text/event-stream", signal });
    } catch (e) {
      if (signal.aborted) return "aborted";
      throw e;
    }
    onOpen?.();
    if (!res.body) return "ended";
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let id: string | undefined;
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            else if (line.startsWith("id:")) id = line.slice(3).trim();
            else if (line.startsWith("event:")) event = line.slice(6).trim();
          }
          if (data.length) onEvent(data.join("\n"), event, id);
        }
      }
    } catch (e) {
      if (signal.aborted) return "aborted";
      throw new RestError(0, "unreachable", `the event stream broke: ${(e as Error).message}`);
    }
    return signal.aborted ? "aborted" : "ended";
  }
}

/** Delays before the 2nd and 3rd try of an idempotent create. */
const RETRY_DELAYS_MS = [1000, 3000];

/**
 * A POST the API deduplicates by Idempotency-Key (deployments, rollbacks): one key for
 * every try, so a retry after a lost answer or a moment without the server cannot
 * create a second rollout. Retried only when the server was not reached or answered 502-504.
 */
export async function idempotentPost<T>(
  rest: Rest,
  path: string,
  body?: unknown,
  sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  const headers = { "idempotency-key": randomUUID() };
  for (let attempt = 0; ; attempt++) {
    try {
      return await rest.request<T>("POST", path, body, { headers });
    } catch (e) {
      const transient = e instanceof RestError && (e.code === "unreachable" || [502, 503, 504].includes(e.status));
      if (!transient || attempt >= RETRY_DELAYS_MS.length) throw e;
      await sleep(RETRY_DELAYS_MS[attempt]!);
    }
  }
}

export function withQuery(path: string, query: Query): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}${path.includes("?") ? "&" : "?"}${s}` : path;
}

/** A path segment: names and ids as the API expects them in a URL. */
export const seg = encodeURIComponent;
