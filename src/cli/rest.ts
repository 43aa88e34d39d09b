// A small REST client for the admin verbs (push, deploy, status, ...): server URL and
// token from flags or PALISADE_URL / PALISADE_TOKEN; API errors become RestError with the
// envelope's code, message and details, which main.ts prints as one clear line.
import type { Command } from "commander";

export interface RestOptions {
  server?: string;
  token?: string;
}

export class RestError extends Error {
  override name = "RestError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: { path: string; code: string; message: string }[] = [],
  ) {
    const more = details.length ? "\n" + details.map((d) => `  ${d.path || "/"}: ${d.message} (${d.code})`).join("\n") : "";
    super(`${message} [${status ? `${code}, HTTP ${status}` : code}]${more}`);
  }
}

/** Adds --server and --token to a verb. */
export function withRestOptions(cmd: Command): Command {
  return cmd
    .option("--server <url>", "API base URL (env PALISADE_URL, default http://127.0.0.1:8080)")
    .option("--token <token>", "API bearer token (env PALISADE_TOKEN)");
}

export class Rest {
  readonly base: string;
  private readonly token: string | undefined;

  constructor(o: RestOptions, env: NodeJS.ProcessEnv = process.env) {
    this.base = (o.server ?? env.PALISADE_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
    if (!/^https?:\/\//.test(this.base)) throw new RestError(0, "invalid_config", `--server must be an http(s) URL, got "${this.base}"`);
    this.token = o.token ?? env.PALISADE_TOKEN;
  }

  async request<T>(method: string, path: string, body?: unknown, opts: { contentType?: string; timeoutMs?: number } = {}): Promise<T> {
    if (!this.token) throw new RestError(0, "unauthorized", "no API token: pass --token or set PALISADE_TOKEN");
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: "application/json" };
    let payload: string | undefined;
    if (body !== undefined) {
      headers["content-type"] = opts.contentType ?? "application/json";
      payload = typeof body === "string" ? body : JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(this.base + path, { method, headers, body: payload, signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000) });
    } catch (e) {
      throw new RestError(0, "unreachable", `cannot reach ${this.base}: ${(e as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string; details?: RestError["details"] } } | undefined)?.error;
      throw new RestError(res.status, err?.code ?? "http_error", err?.message ?? (text.slice(0, 500) || res.statusText), err?.details ?? []);
    }
    return json as T;
  }
}
