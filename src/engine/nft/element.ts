// Set/map element keys and values are written bare inside `{ ... }`, separated by
// commas, so each must be a plain value that cannot close the brace or start a new
// element or statement. Allowed: addresses, prefixes, ranges, ports, marks, MACs,
// concatenations ("a . b"), quoted interface names, and verdicts for map values.

import { NftModelError } from "./errors.ts";
import { IDENTIFIER_RE } from "./names.ts";
import { ifnameProblem } from "./quote.ts";

const ATOM = /^[A-Za-z0-9_.:/-]+$/;
const QUOTED_IFNAME = /^"([^"]*)"$/;
const VERDICT = /^(accept|drop|continue|return|(jump|goto) ([A-Za-z][A-Za-z0-9_]{0,62}))$/;

function atomProblem(atom: string): string | undefined {
  if (ATOM.test(atom)) return undefined; // the common case, checked first: 1M-element sets
  const q = QUOTED_IFNAME.exec(atom);
  if (q) {
    const name = q[1]!.endsWith("*") ? q[1]!.slice(0, -1) : q[1]!;
    return ifnameProblem(name);
  }
  if (!ATOM.test(atom)) return `${JSON.stringify(atom)} is not a plain value (letters, digits and . : / - _ only)`;
  return undefined;
}

/** Why a key is not a safe element key, or undefined. Concatenations use " . ". */
export function elementKeyProblem(key: string): string | undefined {
  if (typeof key !== "string" || key.length === 0) return "element key is empty";
  if (!key.includes(" . ")) return atomProblem(key);
  for (const part of key.split(" . ")) {
    const p = atomProblem(part);
    if (p) return p;
  }
  return undefined;
}

export function elementValueProblem(value: string): string | undefined {
  const v = VERDICT.exec(value);
  if (v) return v[3] && !IDENTIFIER_RE.test(v[3]) ? `chain name ${v[3]} is invalid` : undefined;
  return elementKeyProblem(value);
}

export function checkElementKey(key: string, set: string): string {
  const p = elementKeyProblem(key);
  if (p) throw new NftModelError("invalid_element", `element of ${set}: ${p}`);
  return key;
}

export function checkElementValue(value: string, set: string): string {
  const p = elementValueProblem(value);
  if (p) throw new NftModelError("invalid_element", `element value in ${set}: ${p}`);
  return value;
}
