// The REST API as the tests and benches that run a real server (child process) call it:
// a bearer token, JSON in, status and parsed JSON out. A body that is not JSON fails the
// call (the API always answers JSON), so a test cannot read a broken answer as empty.

export interface RestAnswer<T> {
  status: number;
  json: T;
  headers: Headers;
}

// `any` by default: the tests assert the answers field by field.
/** With `contentType`, a string `body` is sent as it is (a YAML document); otherwise bodies go as JSON. */
export type RestJson = <T = any>(
  method: string,
  path: string,
  body?: unknown,
  contentType?: string,
) => Promise<RestAnswer<T>>;

export interface RestJsonOptions {
  /** Per request, ms (default 30 s); null for none (a test of the server's own queue limits). */
  timeoutMs?: number | null;
  /** A 5xx answer throws, with this text (e.g. the server's log tail) in the message. */
  serverErrorContext?: () => string;
}

/**
 * `base` is one origin (`http://127.0.0.1:PORT`), or a function giving the origins to try
 * in turn (the live replicas): a request that gets no JSON answer from one goes to the next,
 * and only when none answers does the call fail, with the last error.
 */
export function restJson(base: string | (() => string[]), token: string, o: RestJsonOptions = {}): RestJson {
  const bases = typeof base === "string" ? () => [base] : base;
  const timeoutMs = o.timeoutMs === undefined ? 30_000 : o.timeoutMs;
  return async (method, path, body, contentType) => {
    const raw = contentType !== undefined && typeof body === "string";
    let lastErr: unknown;
    for (const b of bases()) {
      let res: Response;
      let json: unknown;
      try {
        res = await fetch(`${b}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined && { "content-type": contentType ?? "application/json" }),
          },
          body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
          ...(timeoutMs !== null && { signal: AbortSignal.timeout(timeoutMs) }),
        });
        json = await res.json();
      } catch (e) {
        lastErr = e;
        continue;
      }
      if (res.status >= 500 && o.serverErrorContext)
        throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}\n${o.serverErrorContext()}`);
      return { status: res.status, json: json as never, headers: res.headers };
    }
    throw lastErr ?? new Error(`${method} ${path}: no server to ask`);
  };
}
