// A cursor over a command's words, and the error a line parser throws when it meets
// something it cannot represent. The error carries the offending token so the report can
// point at it; every `next()` consumes a word, so parsers built on it always terminate.

export type ImportErrorCode =
  | "import_syntax"
  | "import_missing_argument"
  | "import_unknown_option"
  | "import_unknown_module"
  | "import_unknown_target"
  | "import_unsupported"
  | "import_refused"
  | "import_invalid_value"
  | "import_conflict"
  | "import_undefined_variable"
  | "import_shell_control_flow"
  | "import_not_a_firewall_command"
  /** A negated -m set of an ipset the input does not hold: empty, it would match every packet. */
  | "import_ipset_contents_missing";

export class ImportLineError extends Error {
  constructor(
    readonly code: ImportErrorCode,
    message: string,
    readonly token?: string,
  ) {
    super(message);
  }
}

export function fail(code: ImportErrorCode, message: string, token?: string): never {
  throw new ImportLineError(code, message, token);
}

export class Cursor {
  private i = 0;
  constructor(readonly words: readonly string[]) {}

  get done(): boolean {
    return this.i >= this.words.length;
  }
  peek(offset = 0): string | undefined {
    return this.words[this.i + offset];
  }
  /** Consume the next word; `what` names it in the error when it is missing. */
  next(what: string, after?: string): string {
    const w = this.words[this.i];
    if (w === undefined) fail("import_missing_argument", `missing ${what}${after ? ` after ${after}` : ""}`, after);
    this.i++;
    return w;
  }
  /** Consume the next word only if it is an argument (not an option and not `!`). */
  optionalArg(): string | undefined {
    const w = this.words[this.i];
    if (w === undefined || w === "!" || (w.startsWith("-") && w.length > 1 && !/^-\d/.test(w))) return undefined;
    this.i++;
    return w;
  }
  /** Consume the next word as a required argument that must not look like an option. */
  arg(what: string, after: string): string {
    const w = this.optionalArg();
    if (w === undefined) fail("import_missing_argument", `missing ${what} after ${after}`, after);
    return w;
  }
}
