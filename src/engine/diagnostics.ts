// Every problem the engine finds in a policy is a Diagnostic: a JSON path into the
// document, a stable machine code, and one sentence an operator can act on.
// The API returns them verbatim in its error envelope (`details`).

export type Severity = "error" | "warning";

export interface Diagnostic {
  /** JSON pointer into the policy document, e.g. "/chains/input/rules/3/match/saddr". */
  path: string;
  /** Stable, snake_case code; never reworded once published. */
  code: string;
  message: string;
  severity: Severity;
}

export type Path = ReadonlyArray<string | number>;

/** Encode path segments as an RFC 6901 JSON pointer. */
export function pointer(path: Path): string {
  if (path.length === 0) return "";
  return "/" + path.map((s) => String(s).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
}

export function error(path: Path, code: string, message: string): Diagnostic {
  return { path: pointer(path), code, message, severity: "error" };
}

export function warning(path: Path, code: string, message: string): Diagnostic {
  return { path: pointer(path), code, message, severity: "warning" };
}

/** Sort diagnostics so output is deterministic regardless of discovery order. */
export function sortDiagnostics(list: Diagnostic[]): Diagnostic[] {
  return [...list].sort((a, b) =>
    a.severity !== b.severity
      ? a.severity === "error"
        ? -1
        : 1
      : a.path < b.path
        ? -1
        : a.path > b.path
          ? 1
          : a.code.localeCompare(b.code),
  );
}
