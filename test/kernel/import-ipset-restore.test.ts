// `ipset restore` input side by side: each text is restored with the real ipset in a namespace
// of this test and imported (`palisade import --ipset`). Where ipset refuses a line, the import
// refuses the same line; where ipset takes the text, the policy sets hold what ipset's sets hold.
// Then -j SET of a set that does not exist: iptables-restore refuses it, and so does the import.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";

const lab: NetnsLab = createLab();
let ns: string;
before(async () => {
  ns = await lab.addNamespace();
});
after(() => lab.cleanup());

const CASES: [string, string[]][] = [
  // hash:ip: a prefix (host bits too) or a range (either end first) is each of its addresses.
  [
    "prefixes and ranges in hash:ip",
    [
      "create a hash:ip family inet",
      "add a 10.0.0.0/30",
      "add a 10.0.1.1-10.0.1.4",
      "add a 10.0.0.9/32",
      "add a 10.0.2.5/30",
      "add a 10.0.3.4-10.0.3.1",
      "add a 10.0.4.7-10.0.4.7",
      "create b hash:ip family inet6",
      "add b 2001:db8::1/128",
    ],
  ],
  ["a /16 in hash:ip: 65536 addresses, ipset's default maxelem", ["create a hash:ip family inet", "add a 10.1.0.0/16"]],
  ["a /15 in hash:ip: more than maxelem", ["create a hash:ip family inet", "add a 10.2.0.0/15"]],
  ["a prefix past maxelem", ["create a hash:ip family inet maxelem 4", "add a 10.0.0.0/29"]],
  [
    "an add past maxelem",
    ["create a hash:ip family inet maxelem 2", "add a 10.0.0.1", "add a 10.0.0.2", "add a 10.0.0.3"],
  ],
  ["a /0", ["create a hash:ip family inet", "add a 10.0.0.0/0"]],
  ["an inet6 hash:ip prefix", ["create b hash:ip family inet6", "add b 2001:db8::/126"]],
  ["a duplicate add", ["create a hash:ip family inet", "add a 10.0.0.1", "add a 10.0.0.2", "add a 10.0.0.1"]],
  ["a duplicate, written otherwise", ["create a hash:ip family inet", "add a 10.0.0.1", "add a 10.0.0.1/32"]],
  [
    "a duplicate hash:net prefix with host bits",
    ["create n hash:net family inet", "add n 10.0.0.0/24", "add n 10.0.0.1/24"],
  ],
  ["a prefix over an element", ["create a hash:ip family inet", "add a 10.0.0.2", "add a 10.0.0.0/30"]],
  [
    "duplicates with -exist",
    [
      "create a hash:ip family inet",
      "add a 10.0.0.1",
      "create c hash:ip family inet",
      "add a 10.0.0.1 -exist",
      "add c 10.0.0.1",
      "add a 10.0.0.0/30 -exist",
    ],
  ],
  ["a del of a missing element", ["create a hash:ip family inet", "add a 10.0.0.1", "del a 10.0.0.2"]],
  ["a del of a prefix", ["create a hash:ip family inet", "add a 10.0.0.0/29", "del a 10.0.0.4/30"]],
  [
    "ranges in hash:net: the fewest prefixes that cover them",
    [
      "create n hash:net family inet",
      "add n 10.0.0.1-10.0.0.4",
      "add n 10.1.0.0-10.1.255.255",
      "add n 192.168.0.7-192.168.0.3",
      "add n 172.16.0.1-172.31.255.254",
    ],
  ],
  ["a hash:net range of the whole space", ["create n hash:net family inet", "add n 0.0.0.0-255.255.255.255"]],
  ["an IPv6 hash:net range", ["create m hash:net family inet6", "add m 2001:db8::1-2001:db8::4"]],
  [
    "a hash:net range over its prefix",
    ["create n hash:net family inet", "add n 10.0.0.0/30", "add n 10.0.0.0-10.0.0.3"],
  ],
  ["the null address in hash:ip", ["create a hash:ip family inet", "add a 0.0.0.0"]],
  ["a hash:ip prefix from the null address", ["create a hash:ip family inet", "add a 10.0.0.1", "add a 0.0.0.0/30"]],
  ["a hash:ip range to the null address", ["create a hash:ip family inet", "add a 0.0.0.2-0.0.0.0"]],
  ["a del of the null address in hash:ip", ["create a hash:ip family inet", "del a 0.0.0.0 -exist"]],
  ["the IPv6 null address in hash:ip", ["create b hash:ip family inet6", "add b ::"]],
  [
    "the null address in hash:net",
    ["create n hash:net family inet", "add n 0.0.0.0", "add n 0.0.0.0/8", "create m hash:net family inet6", "add m ::"],
  ],
  ["a create twice", ["create a hash:ip family inet", "create a hash:ip family inet"]],
  ["a create twice with -exist", ["create a hash:ip family inet", "create a hash:ip family inet -exist"]],
  // -exist: on for the rest of the restore from the line that has it; a batch of adds (dels) to
  // one set takes the flag as it was at its first line; COMMIT, another command or set ends it.
  ["add, then add -exist of it", ["create a hash:ip family inet", "add a 10.0.0.1", "add a 10.0.0.1 -exist"]],
  ["add -exist, then add of it", ["create a hash:ip family inet", "add a 10.0.0.1 -exist", "add a 10.0.0.1"]],
  [
    "-exist inside a batch",
    ["create a hash:ip family inet", "add a 10.0.0.1", "add a 10.0.0.2 -exist", "# a comment", "add a 10.0.0.1"],
  ],
  [
    "-exist inside a batch, then a new batch",
    ["create a hash:ip family inet", "add a 10.0.0.1", "add a 10.0.0.2 -exist", "create b hash:ip", "add a 10.0.0.1"],
  ],
  [
    "-exist of another set's add",
    ["create a hash:ip family inet", "create b hash:ip", "add b 10.0.0.9 -exist", "add a 10.0.0.1", "add a 10.0.0.1"],
  ],
  ["COMMIT ends a batch", ["create a hash:ip family inet", "add a 10.0.0.1", "COMMIT", "add a 10.0.0.1 -exist"]],
  [
    "-exist of a create",
    ["create a hash:ip family inet -exist", "add a 10.0.0.1", "add a 10.0.0.1", "create a hash:ip"],
  ],
  ["dels after -exist", ["create a hash:ip family inet", "add a 10.0.0.1 -exist", "del a 10.0.0.1", "del a 10.0.0.1"]],
  // -exist excuses only the same set: type, maxelem, timeout and extensions (not family, hashsize).
  ["create -exist of another type", ["create a hash:ip family inet", "create a hash:net family inet -exist"]],
  ["create -exist of another maxelem", ["create a hash:ip family inet", "create a hash:ip maxelem 10 -exist"]],
  ["create -exist with a timeout", ["create a hash:ip family inet timeout 0", "create a hash:ip -exist"]],
  ["create -exist with counters", ["create a hash:ip family inet", "create a hash:ip counters -exist"]],
  [
    "create -exist of another family, hashsize, the default maxelem",
    [
      "create a hash:ip family inet",
      "create a hash:ip family inet6 hashsize 4096 maxelem 65536 -exist",
      "add a 10.0.0.1",
    ],
  ],
  // A tuple's port range is one entry per port: counted, refused and deleted port by port.
  ["a tuple port range past maxelem", ["create s hash:ip,port family inet maxelem 10", "add s 1.2.3.4,tcp:1-100"]],
  [
    "a port of a tuple range added again",
    ["create t hash:ip,port family inet", "add t 1.2.3.4,tcp:80-90", "add t 1.2.3.4,tcp:85"],
  ],
  [
    "a del of a port of a tuple range",
    [
      "create t hash:net,port family inet",
      "add t 10.0.0.0/8,tcp:80-90",
      "del t 10.0.0.0/8,tcp:85",
      "add t 10.0.0.0/8,udp:1",
    ],
  ],
  [
    "a del of a tuple range past its ports",
    ["create t hash:ip,port family inet", "add t 1.2.3.4,tcp:80-90", "del t 1.2.3.4,tcp:89-91"],
  ],
  // The null address: hash:ip,port refuses it (add, del -exist), hash:net,port takes it.
  ["the null address in hash:ip,port", ["create a hash:ip,port family inet", "add a 0.0.0.0,tcp:22"]],
  ["the null address in an inet6 hash:ip,port", ["create b hash:ip,port family inet6", "add b ::,tcp:22"]],
  ["a del of the null address in hash:ip,port", ["create a hash:ip,port family inet", "del a 0.0.0.0,tcp:22 -exist"]],
  [
    "the null address in hash:net,port",
    [
      "create n hash:net,port family inet",
      "add n 0.0.0.0,tcp:22",
      "create m hash:net,port family inet6",
      "add m ::,tcp:22",
    ],
  ],
];

/** ipset's verdict: the line it refused (0: none) and, when it took the text, each set's members. */
async function viaIpset(lines: string[]): Promise<{ line: number; sets: Record<string, string[]> }> {
  await lab.exec(ns, ["ipset", "destroy"], { allowFailure: true });
  const r = await lab.exec(ns, ["ipset", "restore"], { input: `${lines.join("\n")}\n`, allowFailure: true });
  if (r.code !== 0) {
    const m = /Error in line (\d+)/.exec(r.stderr);
    assert.ok(m, r.stderr);
    return { line: Number(m[1]), sets: {} };
  }
  const saved = (await lab.exec(ns, ["ipset", "save"])).stdout;
  const sets: Record<string, string[]> = {};
  for (const l of saved.split("\n")) {
    const w = l.split(" ");
    if (w[0] === "create") sets[w[1]!] = [];
    if (w[0] === "add") sets[w[1]!]!.push(w[2]!);
  }
  for (const k of Object.keys(sets)) sets[k]!.sort();
  return { line: 0, sets };
}

function viaImport(lines: string[]): { line: number; sets: Record<string, string[]> } {
  const r = importPolicy("iptables-save", "", { ipsets: `${lines.join("\n")}\n` });
  if (r.errors.length > 0) {
    const m = /^\/ipsets\/line\/(\d+)$/.exec(r.errors[0]!.path);
    assert.ok(m, JSON.stringify(r.errors));
    return { line: Number(m[1]), sets: {} };
  }
  const sets: Record<string, string[]> = {};
  // A tuple's port range is written one port per line by ipset save.
  const entries = (e: string) => {
    const m = /^(.*:)(\d+)-(\d+)$/.exec(e);
    return m ? Array.from({ length: Number(m[3]) - Number(m[2]) + 1 }, (_, i) => `${m[1]}${Number(m[2]) + i}`) : [e];
  };
  for (const [k, s] of Object.entries(r.policy!.sets ?? {})) sets[k] = s.elements.map(String).flatMap(entries).sort();
  return { line: 0, sets };
}

test("ipset restore and the import refuse the same line, and otherwise hold the same members", async () => {
  const differ: string[] = [];
  for (const [name, lines] of CASES) {
    const real = await viaIpset(lines);
    const imported = viaImport(lines);
    if (imported.line !== real.line)
      differ.push(`${name}: ipset refuses line ${real.line || "none"}, the import ${imported.line || "none"}`);
    else if (JSON.stringify(imported.sets) !== JSON.stringify(real.sets)) differ.push(`${name}: members differ`);
  }
  assert.deepEqual(differ, []);
  // The figures that show the cases exercised what they say.
  assert.equal((await viaIpset(CASES[1]![1])).sets.a!.length, 65536);
  assert.equal((await viaIpset(CASES[0]![1])).sets.a!.length, 4 + 4 + 1 + 4 + 4 + 1);
});

test("-j SET --add-set of a set that does not exist: iptables-restore refuses it, and so does the import", async () => {
  await lab.exec(ns, ["ipset", "destroy"], { allowFailure: true });
  const dump = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 23 -j SET --add-set scanners src\nCOMMIT\n";
  const real = await lab.exec(ns, ["iptables-restore"], { input: dump, allowFailure: true });
  assert.notEqual(real.code, 0);
  assert.match(real.stderr, /Set scanners doesn't exist/);
  const r = importPolicy("iptables-save", dump);
  assert.deepEqual(
    r.errors.map((e) => `${e.code} ${e.path}`),
    ["import_ipset_contents_missing /source/line/3"],
  );
  // With the set created, both take it.
  await lab.exec(ns, ["ipset", "create", "scanners", "hash:ip"]);
  await lab.exec(ns, ["iptables-restore"], { input: dump });
  const ok = importPolicy("iptables-save", dump, { ipsets: "create scanners hash:ip family inet\n" });
  assert.deepEqual(ok.errors, []);
  await lab.exec(ns, ["iptables-restore"], { input: "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n" });
});
