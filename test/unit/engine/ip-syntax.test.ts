// engine/net/ip-syntax: the engine's isIPv4/isIPv6 (node:net's expressions, copied so that
// a cold `palisade render` does not load node:net) answer exactly as node:net does.
import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "node:test";
import { isIPv4, isIPv6 } from "../../../src/engine/net/ip-syntax.ts";

const samples = [
  "",
  "0.0.0.0",
  "255.255.255.255",
  "256.1.1.1",
  "01.2.3.4",
  "1.2.3",
  "1.2.3.4.",
  " 1.2.3.4",
  "1.2.3.4/24",
  "::",
  "::1",
  "1::",
  "fe80::1%eth0",
  "fe80::1%",
  "2001:db8::1",
  "2001:DB8:0:0:0:0:0:1",
  "2001:db8:0:0:0:0:0:0:1",
  "::ffff:192.0.2.1",
  "1:2:3:4:5:6:1.2.3.4",
  "1:2:3:4:5:6:7:1.2.3.4",
  ":::1",
  "1:::2",
  "12345::",
  "g::1",
  "1.2.3.4::",
  "::1.2.3.4",
  "2001:db8::/32",
];

/** Strings over the characters addresses are made of, from a fixed seed. */
function* generated(n: number): Generator<string> {
  const alphabet = "0123456789abcdefABCDEFg.:%/ ";
  let seed = 0x2545f491;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  for (let i = 0; i < n; i++) {
    const len = next() % 24;
    let s = "";
    for (let j = 0; j < len; j++) s += alphabet[next() % alphabet.length];
    yield s;
  }
}

test("isIPv4 and isIPv6 agree with node:net", () => {
  let v4 = 0;
  let v6 = 0;
  for (const s of [...samples, ...generated(50_000)]) {
    assert.equal(isIPv4(s), net.isIPv4(s), `isIPv4(${JSON.stringify(s)})`);
    assert.equal(isIPv6(s), net.isIPv6(s), `isIPv6(${JSON.stringify(s)})`);
    if (net.isIPv4(s)) v4++;
    if (net.isIPv6(s)) v6++;
  }
  // The comparison covers both answers for both families.
  assert.ok(v4 >= 2 && v6 >= 10, `${v4} IPv4 and ${v6} IPv6 addresses among the samples`);
});
