// Token safety for iptables-restore input. The restore parser splits a line on blanks and
// understands double quotes with backslash escapes; a newline ends the rule. Free text
// (comments, log prefixes) is always quoted and escaped; everything else must already be a
// plain token, or rendering refuses it, so no user string can add options or rules.
import type { Path } from "../../diagnostics.ts";
import type { IptCtx } from "./context.ts";

/** Printable ASCII only: a control character (newline above all) could start a new rule. */
const PRINTABLE = /^[\x20-\x7e]*$/;

export function quoteText(text: string, ctx: IptCtx, path: Path): string {
  if (!PRINTABLE.test(text)) {
    ctx.error(path, "iptables_unsafe_text", "text must be printable ASCII without control characters");
    return '""';
  }
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** A bare token: letters, digits and the punctuation of addresses, ranges and names. */
const TOKEN = /^[A-Za-z0-9_.:/,+@-]+$/;

export function bare(token: string, ctx: IptCtx, path: Path, what: string): string {
  if (!TOKEN.test(token) || token.startsWith("-")) {
    ctx.error(
      path,
      "iptables_unsafe_token",
      `${what} ${JSON.stringify(token)} contains characters iptables-restore cannot carry as one token`,
    );
    return "invalid";
  }
  return token;
}
