// Parsing of iptables argument values into schema values: addresses, ports, marks, rates,
// numbers, interface names. Each parser throws an ImportLineError naming the token.
import { parsePrefix, hasHostBits, ipv4Network, zoneIdProblem } from "../net/address.ts";
import { Interface, RATE_UNITS } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import { SERVICES } from "./vocab.ts";

export type Family = "ipv4" | "ipv6";

/** `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `1.2.3.4`, comma lists. Host names are not resolved. */
export function parseAddressList(text: string, option: string): string[] {
  const items = text.split(",");
  return items.map((item) => parseAddress(item, option));
}

/** A DNS name (with a letter somewhere, so no dotted quad), optionally with a mask as iptables allows. */
const HOST_NAME =
  /^(?=[^/]*[A-Za-z])[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?(\/\d{1,2})?$/;

export function parseAddress(item: string, option: string): string {
  if (item === "") fail("import_invalid_value", `empty address in ${option}`, option);
  const slash = item.indexOf("/");
  let text = item;
  if (slash >= 0 && item.slice(slash + 1).includes(".")) {
    const bits = dottedMaskBits(item.slice(slash + 1));
    if (bits === null) fail("import_invalid_value", `${item}: the netmask is not contiguous`, item);
    text = `${item.slice(0, slash)}/${bits}`;
  }
  const zone = zoneIdProblem(item);
  if (zone) fail("import_invalid_value", zone, item);
  const p = parsePrefix(text);
  if (!p) {
    if (HOST_NAME.test(item))
      fail(
        "import_invalid_value",
        `${item} is a host name: iptables resolves it through DNS when it loads the rule, which is not repeatable ` +
          "(the answer can change between loads and differ between hosts); replace it with the addresses it stands for" +
          (item.split("/")[0] === "localhost" ? " (127.0.0.1, ::1 for IPv6)" : ""),
        item,
      );
    fail("import_invalid_value", `${item} is not an IPv4/IPv6 address or prefix`, item);
  }
  // iptables masks host bits away (10.1.2.3/8 means 10.0.0.0/8); nft refuses them, so do the same here.
  if (p.family === "ipv4" && hasHostBits(p)) return `${ipv4Network(p)}/${p.length}`;
  // A full-length prefix is one host: written as the address, as iptables-save's /32 means.
  if (p.length === (p.family === "ipv4" ? 32 : 128)) return p.address;
  return `${p.address}/${p.length}`;
}

function dottedMaskBits(mask: string): number | null {
  const p = parsePrefix(mask);
  if (p?.family !== "ipv4" || mask.includes("/")) return null;
  const n = mask.split(".").reduce((acc, o) => (acc * 256 + Number(o)) >>> 0, 0);
  const bits = n.toString(2).padStart(32, "0");
  const ones = bits.indexOf("0") < 0 ? 32 : bits.indexOf("0");
  return /^1*0*$/.test(bits) ? ones : null;
}

export function familyOf(address: string): Family | null {
  return parsePrefix(address)?.family ?? null;
}

export function parsePort(text: string, _option: string): number {
  if (/^\d{1,5}$/.test(text)) {
    const n = Number(text);
    if (n <= 65535) return n;
  }
  const named = SERVICES[text];
  if (named !== undefined) return named;
  return fail("import_invalid_value", `${text} is not a port number (0-65535) or a known service name`, text);
}

/** `22`, `1000:2000`, `:1024`, `1024:` -> 22 | "1000-2000". */
export function parsePortItem(text: string, option: string): number | string {
  const colon = text.indexOf(":");
  if (colon < 0) return parsePort(text, option);
  const lo = colon === 0 ? 0 : parsePort(text.slice(0, colon), option);
  const hi = colon === text.length - 1 ? 65535 : parsePort(text.slice(colon + 1), option);
  if (lo > hi) fail("import_invalid_value", `port range ${text} is reversed`, text);
  return `${lo}-${hi}`;
}

export function parsePortList(text: string, option: string): Array<number | string> {
  const items = text.split(",");
  if (items.length > 15) fail("import_invalid_value", `multiport takes at most 15 ports, got ${items.length}`, text);
  return items.map((p) => parsePortItem(p, option));
}

export function parseUint(text: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n > max) fail("import_invalid_value", `${text} is not a valid ${what}`, text);
  return n;
}

/** How many digits each form may have in {@link strtoulBase0} (a longer text is refused). */
export interface DigitCaps {
  /** After `0x`. */
  hex?: number;
  /** After the leading `0`. */
  octal?: number;
  /** In all (the first is 1-9). */
  decimal?: number;
}

/**
 * A number as C's strtoul(text, NULL, 0) reads it, as libxtables' modules do: `0x`/`0X` then
 * hex digits, a leading `0` then octal digits (`010` is 8, `08` is refused), else decimal; or
 * undefined where `text` is not such a number or is above `max`. Nothing else is taken: no
 * spaces, no sign, no `0x` without digits, nothing after the digits (strtoul itself would skip
 * leading spaces and take a sign; the importer has always refused them). `digits` caps each
 * form's length, so that a caller keeps the exact texts it accepted before (leading zeros count).
 */
export function strtoulBase0(text: string, max: number, digits: DigitCaps = {}): number | undefined {
  const m = /^(?:0[xX]([0-9a-fA-F]+)|0([0-7]*)|([1-9][0-9]*))$/.exec(text);
  if (!m) return undefined;
  const [, hex, octal, decimal] = m;
  let n: number;
  if (hex !== undefined) n = hex.length <= (digits.hex ?? Infinity) ? Number.parseInt(hex, 16) : NaN;
  else if (octal !== undefined) n = octal.length <= (digits.octal ?? Infinity) ? Number.parseInt(`0${octal}`, 8) : NaN;
  else n = decimal!.length <= (digits.decimal ?? Infinity) ? Number(decimal) : NaN;
  return n <= max ? n : undefined;
}

/** A DSCP value as libxt_dscp/libxt_DSCP read it (strtoul base 0, at most 8 hex digits), 0-63. */
export function parseDscp(text: string, opt: string): number {
  const n = strtoulBase0(text, 0x3f, { hex: 8, decimal: 9 });
  return n ?? fail("import_invalid_value", `${opt} ${text} is not a DSCP value (0-63)`, text);
}

/** libxt_dscp's class names (dscp_helper.c, any case): CS0-CS7, AF11-AF43, EF, BE. */
const DSCP_CLASSES: Record<string, number> = {
  CS0: 0,
  CS1: 8,
  CS2: 16,
  CS3: 24,
  CS4: 32,
  CS5: 40,
  CS6: 48,
  CS7: 56,
  BE: 0,
  EF: 46,
  AF11: 10,
  AF12: 12,
  AF13: 14,
  AF21: 18,
  AF22: 20,
  AF23: 22,
  AF31: 26,
  AF32: 28,
  AF33: 30,
  AF41: 34,
  AF42: 36,
  AF43: 38,
};

export function parseDscpClass(text: string, opt: string): number {
  const key = text.toUpperCase();
  if (!Object.hasOwn(DSCP_CLASSES, key))
    fail("import_invalid_value", `${opt} ${text} is not a DSCP class (CS0-CS7, AF11-AF43, EF, BE)`, text);
  return DSCP_CLASSES[key]!;
}

/** `0x10/0xff` or `16` -> value and optional mask. */
export function parseMarkValue(text: string, what: string): { value: number; mask?: number } {
  const [v, m, extra] = text.split("/");
  if (extra !== undefined) fail("import_invalid_value", `${text} is not a valid ${what}`, text);
  const value = parseUint(v ?? "", what, 0xffffffff);
  if (m === undefined) return { value };
  return { value, mask: parseUint(m, `${what} mask`, 0xffffffff) };
}

/** `1/second`, `1/s`, `3/min`, `5/hour`, `10/day`; iptables also allows the bare number (per second). */
export function parseRate(text: string, option: string): string {
  const m = /^(\d{1,9})(?:\/(s|sec|second|m|min|minute|h|hour|d|day))?$/.exec(text);
  if (!m) fail("import_invalid_value", `${text} is not a rate like 5/second`, text);
  const count = Number(m[1]);
  if (count < 1) fail("import_invalid_value", `${option} ${text}: the rate must be at least 1`, text);
  const unit = m[2] ?? "s";
  const per = RATE_UNITS.find((u) => u.startsWith(unit[0]!))!;
  return `${count}/${per}`;
}

/** iptables' `+` wildcard becomes the schema's `*`. */
export function parseInterface(text: string, _option: string): string {
  const name = text.endsWith("+") ? `${text.slice(0, -1)}*` : text;
  if (!Interface.safeParse(name).success) fail("import_invalid_value", `${text} is not a valid interface name`, text);
  return name;
}
