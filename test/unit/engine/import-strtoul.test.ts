// strtoulBase0: the one reader of libxtables' strtoul(base 0) numbers in the importer (DSCP,
// NFQUEUE queue numbers, owner uid/gid). Each caller keeps its own maximum and digit caps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { strtoulBase0 } from "../../../src/engine/import/values.ts";
import { importPolicy } from "../../../src/engine/import/index.ts";

test("strtoulBase0: decimal, 0x hex and leading-0 octal", () => {
  assert.equal(strtoulBase0("0", 10), 0);
  assert.equal(strtoulBase0("00", 10), 0);
  assert.equal(strtoulBase0("010", 10), 8);
  assert.equal(strtoulBase0("07", 10), 7);
  assert.equal(strtoulBase0("10", 10), 10);
  assert.equal(strtoulBase0("0xa", 10), 10);
  assert.equal(strtoulBase0("0XA", 10), 10);
  assert.equal(strtoulBase0("0x00", 10), 0);
});

test("strtoulBase0: refuses what strtoul base 0 does not read whole, and no sign or spaces", () => {
  for (const t of ["", "0x", "0X", "0x1g", "08", "09", "019", "1a", "x1", "+1", "-1", " 1", "1 ", "1.0", "1e1", "0b1"])
    assert.equal(strtoulBase0(t, 1000), undefined, JSON.stringify(t));
});

test("strtoulBase0: max is inclusive in every form", () => {
  assert.equal(strtoulBase0("63", 63), 63);
  assert.equal(strtoulBase0("64", 63), undefined);
  assert.equal(strtoulBase0("0x3f", 63), 63);
  assert.equal(strtoulBase0("0x40", 63), undefined);
  assert.equal(strtoulBase0("077", 63), 63);
  assert.equal(strtoulBase0("0100", 63), undefined);
  assert.equal(strtoulBase0("4294967294", 0xfffffffe), 0xfffffffe);
  assert.equal(strtoulBase0("4294967295", 0xfffffffe), undefined);
  assert.equal(strtoulBase0("9".repeat(400), 0xfffffffe), undefined);
});

test("strtoulBase0: digit caps count leading zeros, per form, and default to none", () => {
  const caps = { hex: 2, octal: 3, decimal: 2 };
  assert.equal(strtoulBase0("0x01", 255, caps), 1);
  assert.equal(strtoulBase0("0x001", 255, caps), undefined);
  assert.equal(strtoulBase0("0001", 255, caps), 1);
  assert.equal(strtoulBase0("00001", 255, caps), undefined);
  assert.equal(strtoulBase0("0", 255, caps), 0);
  assert.equal(strtoulBase0("99", 255, caps), 99);
  assert.equal(strtoulBase0("100", 255, caps), undefined);
  assert.equal(strtoulBase0(`0x${"0".repeat(40)}1`, 255), 1);
  assert.equal(strtoulBase0(`${"0".repeat(40)}1`, 255), 1);
});

// The callers' own bounds and messages, unchanged by the merge.
const errs = (line: string) => importPolicy("iptables", line).errors.map((e) => e.message);

test("callers keep their bounds and messages: DSCP 0-63 (8 hex digits), queue 0-65535, owner id < 2^32-1", () => {
  assert.deepEqual(errs("iptables -A INPUT -m dscp --dscp 64 -j DROP").length, 1);
  assert.match(errs("iptables -A INPUT -m dscp --dscp 08 -j DROP")[0]!, /--dscp 08 is not a DSCP value \(0-63\)/);
  assert.match(errs("iptables -A INPUT -m dscp --dscp 0x000000001 -j DROP")[0]!, /is not a DSCP value/);
  assert.deepEqual(errs("iptables -A INPUT -m dscp --dscp 0x00000001 -j DROP"), []);
  assert.deepEqual(errs("iptables -A INPUT -j NFQUEUE --queue-num 0177777"), []);
  assert.match(errs("iptables -A INPUT -j NFQUEUE --queue-num 65536")[0]!, /is not a queue number \(0-65535\)/);
  assert.match(errs("iptables -A INPUT -j NFQUEUE --queue-num 0x000010000")[0]!, /is not a queue number/);
  assert.deepEqual(errs("iptables -A OUTPUT -m owner --uid-owner 0xfffffffe -j DROP"), []);
  assert.match(errs("iptables -A OUTPUT -m owner --uid-owner 0xffffffff -j DROP")[0]!, /not a user id, range or name/);
  assert.match(errs(`iptables -A OUTPUT -m owner --uid-owner 0${"0".repeat(22)}1 -j DROP`)[0]!, /not a user id/);
  assert.deepEqual(errs(`iptables -A OUTPUT -m owner --uid-owner 0${"0".repeat(21)}1 -j DROP`), []);
});
