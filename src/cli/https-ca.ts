// HTTPS to a server whose certificate comes from a private CA (--ca-file, PALISADE_CA_FILE or
// the context's ca-file). Node's fetch cannot take a CA per request, so these requests go
// through node:https with that CA as the only root and come back as a fetch Response: the
// rest of the CLI (errors, SSE streaming) does not know the difference.
import { readFile } from "node:fs/promises";
import { request } from "node:https";
import { Readable } from "node:stream";
import { CliError, EXIT } from "./errors.ts";

export async function readCaFile(file: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(file, "utf8");
  } catch (e) {
    throw new CliError("usage", `cannot read the CA file ${file}: ${(e as Error).message}`, EXIT.usage);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----"))
    throw new CliError("usage", `the CA file ${file} holds no PEM certificate`, EXIT.usage);
  return pem;
}

export function fetchWithCa(
  url: string,
  ca: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method, headers: init.headers, ca, signal: init.signal }, (res) => {
      const headers = new Headers();
      for (const [k, v] of Object.entries(res.headers))
        for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) headers.append(k, one);
      const body =
        res.statusCode === 204 || res.statusCode === 304 || init.method === "HEAD"
          ? null
          : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
      resolve(new Response(body, { status: res.statusCode ?? 502, statusText: res.statusMessage ?? "", headers }));
    });
    // Shaped like fetch's failure (a TypeError whose cause says why), which rest.ts reports.
    req.on("error", (e) =>
      reject(init.signal?.aborted ? init.signal.reason : Object.assign(new TypeError("fetch failed"), { cause: e })),
    );
    req.end(init.body);
  });
}
