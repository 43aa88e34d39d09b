// Every failure of a `palisade` verb ends the same way: one `error: <code>: <message>` line
// on stderr, one indented line per detail the API sent (the JSON path and what is wrong
// there), a `hint:` line with what to do next when there is one, and an exit status a
// script can test (EXIT below; docs/cli.md lists them).

/** Exit statuses of `palisade`. Stable: scripts test them. */
export const EXIT = {
  ok: 0,
  /** Anything not listed below (a failed rollout, an agent error). */
  generic: 1,
  /** The command line is wrong: unknown verb or flag, missing argument, bad flag value. */
  usage: 2,
  /** What the command names does not exist (host, ruleset, version, deployment, file). */
  notFound: 3,
  /** The request or document was refused as invalid or conflicting (400, 409, 413, 415, 422;
   *  validate, render, import and trace of an invalid document or packet). */
  invalid: 4,
  /** The server cannot be reached or cannot answer now (5xx, 503 busy/unavailable, 429). */
  unavailable: 5,
  /** No token, an unknown or revoked one, or a role that may not do this (401, 403). */
  denied: 6,
  /** A watch (deploy --wait, status) gave up while the rollout was still running. */
  stillRunning: 7,
  /** Done for some hosts only: `deployments rollback` left out hosts whose kernel lacks a
   *  feature the version they would go back to needs (they still run the undone version). */
  partial: 8,
} as const;

export interface ErrorDetail {
  path: string;
  code: string;
  message: string;
}

// Each verb is its own bundle with its own copy of this module (scripts/build.mjs), so
// main.ts cannot use instanceof on a verb's errors: a registered symbol marks them.
const BRAND = Symbol.for("palisade.cli-error");

export class CliError extends Error {
  override name = "CliError";
  readonly [BRAND] = true;
  constructor(
    readonly code: string,
    message: string,
    readonly exit: number = exitForCode(code),
    readonly details: ErrorDetail[] = [],
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** A command-line mistake the verb itself found (commander finds the others). */
export const usageError = (message: string, hint?: string) => new CliError("usage", message, EXIT.usage, [], hint);

const CODE_EXIT: Record<string, number> = {
  usage: EXIT.usage,
  not_found: EXIT.notFound,
  file_not_found: EXIT.notFound,
  invalid_request: EXIT.invalid,
  malformed_request: EXIT.invalid,
  invalid_policy: EXIT.invalid,
  invalid_packet: EXIT.invalid,
  conflict: EXIT.invalid,
  payload_too_large: EXIT.invalid,
  unsupported_media_type: EXIT.invalid,
  unreachable: EXIT.unavailable,
  unavailable: EXIT.unavailable,
  busy: EXIT.unavailable,
  rate_limited: EXIT.unavailable,
  internal: EXIT.unavailable,
  unauthorized: EXIT.denied,
  forbidden: EXIT.denied,
};

export function exitForCode(code: string): number {
  return CODE_EXIT[code] ?? EXIT.generic;
}

/** The exit status for an HTTP error status, when the API's code is not one we know. */
export function exitForStatus(status: number): number {
  if (status === 404) return EXIT.notFound;
  if (status === 401 || status === 403) return EXIT.denied;
  if (status === 429 || status >= 500) return EXIT.unavailable;
  if (status >= 400) return EXIT.invalid;
  return EXIT.generic;
}

/** What to do next, for the codes where the message alone does not say. */
const HINTS: Record<string, string> = {
  unauthorized: "pass --token, set PALISADE_TOKEN, or run `palisade login --server URL --token-file FILE`",
  unreachable:
    "check --server (or PALISADE_SERVER, or the context's server: `palisade config get-contexts`) and that the API runs",
  unavailable: "the server's database or Redis does not answer; retry shortly, or check `GET /readyz`",
  busy: "the server is busy with other expensive requests; retry shortly",
  rate_limited: "too many requests with this token; wait and retry",
  forbidden: "ask an admin for a token with the role the message names",
};

const SYSTEM_CODES: Record<string, string> = {
  ENOENT: "file_not_found",
  EACCES: "permission_denied",
  EISDIR: "invalid_request",
};

/** Any thrown value as the CLI prints it: the stderr text and the exit status. */
export function describeError(err: unknown): { text: string; exit: number } {
  const e = err instanceof Error ? err : new Error(String(err));
  let code: string;
  let exit: number;
  let details: ErrorDetail[] = [];
  let hint: string | undefined;
  if ((e as Partial<CliError>)[BRAND] === true) {
    ({ code, exit, details } = e as CliError);
    hint = (e as CliError).hint ?? HINTS[code];
  } else {
    const own = (e as { code?: unknown }).code;
    if (typeof own === "string" && SYSTEM_CODES[own]) code = SYSTEM_CODES[own]!;
    else if (typeof own === "string" && /^[a-z][a-z0-9_]*$/.test(own)) code = own;
    else if (e.name === "ConfigError") code = "invalid_config";
    else code = "error";
    exit = exitForCode(code);
  }
  const lines = [`error: ${code}: ${e.message}`];
  for (const d of details) lines.push(`  ${d.path || "/"}: ${d.message} (${d.code})`);
  if (hint) lines.push(`hint: ${hint}`);
  return { text: lines.join("\n") + "\n", exit };
}
