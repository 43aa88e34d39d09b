// The REST API as the tests and benches that run a real server (child process) call it:
// a bearer token, JSON in, status and parsed JSON out. A body that is not JSON fails the
// call (the API always answers JSON), so a test cannot read a broken answer as empty.

export interface RestAnswer<T> {
  status: number;
  json: T;
}

// `any` by default: the tests assert the answers field by field.
export type RestJson = <T = any>(method: string, path: string, body?: unknown) => Promise<RestAnswer<T>>;

export interface RestJsonOptions {
  /** Per request, ms (default 30 s). */
  timeoutMs?: number;
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
  return async (method, path, body) => {
    let lastErr: unknown;
    for (const b of bases()) {
      let res: Response;
      let json: unknown;
      try {
        res = await fetch(`${b}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined && { "content-type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
        });
        json = await res.json();
      } catch (e) {
        lastErr = e;
        continue;
      }
      if (res.status >= 500 && o.serverErrorContext)
        throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}\n${o.serverErrorContext()}`);
      return { status: res.status, json: json as never };
    }
    throw lastErr ?? new Error(`${method} ${path}: no server to ask`);
  };
}
