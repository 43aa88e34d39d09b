// ipset import: what real ipset refuses and what the policy cannot hold, refused at the line
// that asks for it (the element budget, maxelem, the null address, create -exist, and the
// -exist of a batch of adds/dels as ipset restore sends it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";

const viaIpsets = (...lines: string[]) => importPolicy("iptables-save", "", { ipsets: `${lines.join("\n")}\n` });
const errs = (r: ReturnType<typeof importPolicy>) => r.errors.map((e) => `${e.code} ${e.path}`);

test("the import adds at most 4000000 ipset elements in all (a bound on its work, counting every add): refused before expanding", () => {
  // 100 sets each given a /16: 4 KB of input, 6.5M addresses if expanded.
  const lines: string[] = [];
  for (let i = 0; i < 100; i++) lines.push(`create s${i} hash:ip`, `add s${i} 10.${i}.0.0/16`);
  const r = viaIpsets(...lines);
  // 61 /16s are 3997696 elements; the 62nd add (line 124) would pass the limit.
  // Each later add is refused too (the import reports every refused line).
  assert.deepEqual(
    errs(r),
    Array.from({ length: 39 }, (_, i) => `import_invalid_value /ipsets/line/${124 + 2 * i}`),
  );
  assert.match(
    r.errors[0]!.message,
    /^ipsets line 124: ipset element 10\.61\.0\.0\/16 is 65536 elements, more than the import may still add: the import adds at most 4000000 ipset elements in all \(counting every add of the input, also those a destroy, flush or del removed\)$/,
  );
  // The budget counts adds, not what the sets hold: with each set destroyed after its add, the
  // sets hold one /16 at most, and the message does not claim they hold too many.
  const destroyed: string[] = [];
  for (let i = 0; i < 62; i++) destroyed.push(`create s${i} hash:ip`, `add s${i} 10.${i}.0.0/16`, `destroy s${i}`);
  const d = viaIpsets(...destroyed);
  assert.deepEqual(errs(d), ["import_invalid_value /ipsets/line/185"]);
  assert.match(d.errors[0]!.message, /the import adds at most 4000000 ipset elements in all/);
  assert.doesNotMatch(d.errors[0]!.message, /sets hold/);
});

test("maxelem above the policy's largest set size is refused at create; a set past the policy's per-set limit at its add", () => {
  const r = viaIpsets("create s hash:ip maxelem 999999999", "add s 10.0.0.0/16");
  assert.deepEqual(errs(r), ["import_invalid_value /ipsets/line/1", "import_syntax /ipsets/line/2"]);
  assert.match(r.errors[0]!.message, /maxelem 999999999: a policy set declares at most 16000000 elements/);
  const lines = ["create s hash:ip maxelem 16000000"];
  for (let i = 0; i < 31; i++) lines.push(`add s 10.${i}.0.0/16`);
  const big = viaIpsets(...lines);
  assert.deepEqual(errs(big), ["import_invalid_value /ipsets/line/32"]);
  assert.match(big.errors[0]!.message, /the set would hold 2031616 elements; a policy set holds at most 2000000/);
});

test("hash:ip refuses the null address, as ipset does, also as the start of a prefix or range; hash:net takes it", () => {
  for (const [family, elem] of [
    ["inet", "0.0.0.0"],
    ["inet", "0.0.0.0/32"],
    ["inet", "0.0.0.0/30"],
    ["inet", "0.0.0.2-0.0.0.0"],
    ["inet6", "::"],
    ["inet6", "0::0/128"],
  ]) {
    for (const cmd of ["add", "del"]) {
      const r = viaIpsets(`create s hash:ip family ${family}`, `${cmd} s ${elem}`);
      assert.deepEqual(errs(r), ["import_invalid_value /ipsets/line/2"], `${cmd} ${elem}`);
      assert.match(
        r.errors[0]!.message,
        /the null address, which ipset refuses in a hash:ip set \("Null-valued element/,
      );
    }
  }
  const net = viaIpsets(
    "create n hash:net",
    "add n 0.0.0.0",
    "add n 0.0.0.0/8",
    "create m hash:net family inet6",
    "add m ::",
  );
  assert.deepEqual(errs(net), []);
  assert.deepEqual(net.policy!.sets.n!.elements, ["0.0.0.0", "0.0.0.0/8"]);
  assert.deepEqual(net.policy!.sets.m!.elements, ["::"]);
});

test("create -exist over a set that differs (type, maxelem, timeout, extensions) is refused as ipset refuses it; the same set, or another family or hashsize, is excused", () => {
  for (const [first, second] of [
    ["create a hash:ip", "create a hash:net -exist"],
    ["create a hash:ip", "create a hash:ip timeout 5 -exist"],
    ["create a hash:ip timeout 0", "create a hash:ip -exist"],
    ["create a hash:ip", "create a hash:ip maxelem 10 -exist"],
    ["create a hash:ip", "create a hash:ip counters -exist"],
  ]) {
    const r = viaIpsets(first!, second!);
    assert.deepEqual(errs(r), ["import_conflict /ipsets/line/2"], second);
    assert.match(
      r.errors[0]!.message,
      /-exist excuses only an identical create, ipset refuses it \("Set cannot be created/,
    );
    // A script's single ipset call: refused, the script goes on, the set stays as it was.
    const script = importPolicy("iptables", `ipset ${first}\nipset ${second}\n`);
    assert.deepEqual(errs(script), [], second);
    const line = script.report.find((l) => l.line === 2)!;
    assert.equal(line.status, "skipped");
    assert.match(line.reason!, /this create differs .*; the set stays as it was$/);
  }
  for (const [first, second] of [
    ["create a hash:ip", "create a hash:ip maxelem 65536 -exist"],
    ["create a hash:ip", "create a hash:ip family inet6 hashsize 4096 forceadd -exist"],
    ["create a hash:ip timeout 5 comment", "create a hash:ip comment timeout 5 -exist"],
  ])
    assert.deepEqual(errs(viaIpsets(first!, second!)), [], second);
});

test("-exist in ipset restore text: on from its line for the rest, and a batch of adds/dels to one set takes the flag of its first line", () => {
  const at = (...lines: string[]) => errs(viaIpsets("create a hash:ip", ...lines));
  assert.deepEqual(at("add a 10.0.0.1", "add a 10.0.0.1 -exist"), ["import_conflict /ipsets/line/3"]);
  assert.deepEqual(at("add a 10.0.0.1 -exist", "add a 10.0.0.1"), []);
  assert.deepEqual(at("add a 10.0.0.1", "add a 10.0.0.2 -exist", "", "add a 10.0.0.1"), [
    "import_conflict /ipsets/line/5",
  ]);
  assert.deepEqual(at("add a 10.0.0.1", "add a 10.0.0.2 -exist", "COMMIT", "add a 10.0.0.1"), []);
  assert.deepEqual(at("add a 10.0.0.1", "COMMIT", "add a 10.0.0.1 -exist"), []);
  assert.deepEqual(at("add a 10.0.0.1 -exist", "del a 10.0.0.2", "create a hash:ip"), []);
  // A script's ipset calls are one command each: the flag is the line's own.
  const script = importPolicy(
    "iptables",
    "ipset create a hash:ip\nipset add a 10.0.0.1 -exist\nipset add a 10.0.0.1\n",
  );
  assert.equal(script.report.find((l) => l.line === 3)!.status, "skipped");
});
