// Tuple sets (ipset hash:ip,port / hash:net,port): element shape, the lookup's directions, and
// both renderings. The goldens (test/golden/tuple-set.*) hold a whole policy's output;
// test/kernel/tuple-set.test.ts proves the lookups with packets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chain, hasError, valid } from "../../support/validate.ts";
import { Policy } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";
import { importPolicy } from "../../../src/engine/import/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";

const withSet = (set: unknown, match: unknown = { tupleSet: { set: "t", directions: ["src", "dst"] } }) =>
  chain([{ match, action: "accept" }], { extra: { sets: { t: set } } });

test("tuple set elements: ADDRESS,PROTO:PORT; prefixes and port ranges need interval", () => {
  valid(withSet({ type: "ipv4_addr,port", elements: ["192.0.2.1,tcp:22", "192.0.2.2,udp:53", "192.0.2.3,sctp:9"] }));
  valid(withSet({ type: "ipv4_addr,port", interval: true, elements: ["10.0.0.0/8,tcp:22", "10.0.0.1,tcp:1-1024"] }));
  valid(withSet({ type: "ipv6_addr,port", elements: ["2001:db8::1,udp:53"] }));
  const bad = (el: string, code: string, type = "ipv4_addr,port") =>
    hasError(withSet({ type, elements: [el] }), code, "/sets/t/elements/0");
  bad("192.0.2.1", "set_element_invalid");
  bad("192.0.2.1,22", "set_element_invalid"); // the policy names the protocol (the importer adds tcp)
  bad("192.0.2.1,icmp:8", "set_element_invalid");
  bad("192.0.2.1,tcp:70000", "set_element_invalid");
  bad("192.0.2.1,tcp:9-1", "set_element_invalid");
  bad("2001:db8::1,tcp:22", "set_element_invalid");
  bad("192.0.2.1,tcp:22", "set_element_invalid", "ipv6_addr,port");
  bad("10.0.0.1/8,tcp:22", "set_element_invalid"); // host bits
  bad("10.0.0.0/8,tcp:22", "set_element_needs_interval");
  bad("10.0.0.1,tcp:1-2", "set_element_needs_interval");
});

test("tupleSet: the set must exist, be a tuple set, and get one direction per field", () => {
  const set = { type: "ipv4_addr,port", elements: ["192.0.2.1,tcp:22"] };
  hasError(
    withSet(set, { tupleSet: { set: "nope", directions: ["src", "dst"] } }),
    "unknown_set",
    "/chains/c/rules/0/match/tupleSet/set",
  );
  hasError(withSet({ type: "ipv4_addr", elements: [] }), "set_type_mismatch", "/chains/c/rules/0/match/tupleSet/set");
  hasError(
    withSet(set, { tupleSet: { not: { set: "t", directions: ["src", "dst", "dst"] } } }),
    "set_direction_count",
    "/chains/c/rules/0/match/tupleSet/not/directions",
  );
  hasError(
    withSet(set, { family: "ipv6", tupleSet: { set: "t", directions: ["src", "dst"] } }),
    "address_family_mismatch",
    "/chains/c/rules/0/match/tupleSet/set",
  );
  assert.equal(
    Policy.safeParse({
      chains: { c: { rules: [{ match: { tupleSet: { set: "t", directions: ["src"] } }, action: "accept" }] } },
    }).success,
    false,
    "a tuple has at least two fields",
  );
});

const policy = (sets: unknown, rules: unknown[]) =>
  Policy.parse({ sets, chains: { input: { hook: "input", policy: "drop", rules } } });

test("nftables: a concatenated set (address . protocol . port), looked up on the sides the directions name, in the set's family only", () => {
  const p = policy(
    { t: { type: "ipv4_addr,port", interval: true, elements: ["10.0.0.0/8,tcp:22", "192.0.2.1,udp:1000-1010"] } },
    [
      { match: { tupleSet: { set: "t", directions: ["src", "dst"] } }, action: "accept" },
      { match: { tupleSet: { not: { set: "t", directions: ["dst", "src"] } } }, action: "drop" },
    ],
  );
  const r = renderNft(p);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(
    r.text,
    /add set inet palisade t \{ type ipv4_addr \. inet_proto \. inet_service ; flags interval ; elements = \{ 10\.0\.0\.0\/8 \. tcp \. 22, 192\.0\.2\.1 \. udp \. 1000-1010 \} ; \}/,
  );
  assert.doesNotMatch(r.text, /auto-merge/, "nft refuses auto-merge on a concatenation");
  assert.match(r.text, /input ip saddr \. meta l4proto \. th dport @t accept/);
  assert.match(r.text, /input ip daddr \. meta l4proto \. th sport != @t drop/);
  assert.doesNotMatch(r.text, /ip6 [sd]addr \. meta l4proto/);
});

test("iptables: hash:ip,port or hash:net,port (interval) of the set's family, -m set --match-set NAME src,dst", () => {
  const p = policy(
    {
      t: { type: "ipv4_addr,port", interval: true, elements: ["10.0.0.0/8,tcp:22", "192.0.2.1,udp:53"] },
      h: { type: "ipv6_addr,port", elements: ["2001:db8::1,tcp:22"] },
    },
    [
      { match: { tupleSet: { set: "t", directions: ["src", "dst"] } }, action: "accept" },
      { match: { tupleSet: { not: { set: "h", directions: ["dst", "src"] } } }, action: "drop" },
    ],
  );
  const r = renderIptables(p);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.match(r.ipsets, /^create pal_t hash:net,port family inet maxelem 65536$/m);
  assert.match(r.ipsets, /^add pal_t 10\.0\.0\.0\/8,tcp:22$/m);
  assert.match(r.ipsets, /^add pal_t 192\.0\.2\.1,udp:53$/m);
  assert.match(r.ipsets, /^create pal_h hash:ip,port family inet6 maxelem 65536$/m);
  assert.match(r.text, /^-A PAL-input -m set --match-set pal_t src,dst -j ACCEPT$/m);
  assert.doesNotMatch(r.text, /pal_h/);
  assert.match(r.text6, /^-A PAL-input -m set ! --match-set pal_h dst,src -j DROP$/m);
  assert.doesNotMatch(r.text6, /pal_t/);
});

test("iptables: a port range is one ipset entry per port, and maxelem counts them", () => {
  const elements = ["10.0.0.0/8,tcp:0-65535", "10.0.0.0/16,udp:0-9999"];
  const p = policy({ t: { type: "ipv4_addr,port", interval: true, elements } }, [
    { match: { tupleSet: { set: "t", directions: ["src", "dst"] } }, action: "accept" },
  ]);
  const r = renderIptables(p);
  assert.ok(r.ok);
  assert.match(r.ipsets, /^create pal_t hash:net,port family inet maxelem 75536$/m);
  // An explicit size counts the policy's elements: maxelem is raised to the entries (ipset: Hash is full).
  const sized = renderIptables(
    policy(
      { t: { type: "ipv4_addr,port", interval: true, size: 10, elements: ["1.2.3.4,tcp:1-100", "1.2.3.5,tcp:7"] } },
      [{ match: { tupleSet: { set: "t", directions: ["src", "dst"] } }, action: "accept" }],
    ),
  );
  assert.ok(sized.ok);
  assert.match(sized.ipsets, /^create pal_t hash:net,port family inet maxelem 101$/m);
  const roomy = renderIptables(
    policy({ t: { type: "ipv4_addr,port", interval: true, size: 500, elements: ["1.2.3.4,tcp:1-100"] } }, [
      { match: { tupleSet: { set: "t", directions: ["src", "dst"] } }, action: "accept" },
    ]),
  );
  assert.ok(roomy.ok);
  assert.match(roomy.ipsets, /^create pal_t hash:net,port family inet maxelem 500$/m);
});

test("nftables: an element another covers is left out (nft refuses overlaps in a concatenated interval set; ipset keeps both); a partial overlap is an error", () => {
  const rules = [{ match: { tupleSet: { set: "t", directions: ["src", "dst"] } }, action: "accept" }];
  const covered = renderNft(
    policy(
      {
        t: {
          type: "ipv4_addr,port",
          interval: true,
          elements: [
            "10.1.0.0/16,tcp:22",
            "10.0.0.0/8,tcp:22",
            "10.1.2.3,tcp:20-30",
            "10.1.2.3,udp:22",
            "10.0.0.0/8,tcp:0-100",
          ],
        },
      },
      rules,
    ),
  );
  assert.ok(covered.ok, JSON.stringify(!covered.ok && covered.errors));
  assert.match(covered.text, /elements = \{ 10\.1\.2\.3 \. udp \. 22, 10\.0\.0\.0\/8 \. tcp \. 0-100 \}/);
  const partial = renderNft(
    policy(
      { t: { type: "ipv4_addr,port", interval: true, elements: ["10.0.0.0/8,tcp:20-25", "10.1.0.0/16,tcp:22-30"] } },
      rules,
    ),
  );
  assert.ok(!partial.ok);
  assert.deepEqual(
    partial.errors.map((e) => `${e.code} ${e.path}`),
    ["nft_set_overlap /sets/t/elements/1"],
  );
});

test("nftables: which elements are left out does not depend on their order; partial overlaps are errors in either order", () => {
  const rules = [{ match: { tupleSet: { set: "t", directions: ["src", "dst"] } }, action: "accept" }];
  const render = (elements: string[]) =>
    renderNft(policy({ t: { type: "ipv4_addr,port", interval: true, elements } }, rules));
  const setLine = (elements: string[]) => {
    const r = render(elements);
    assert.ok(r.ok, `${elements.join(" ")}: ${JSON.stringify(!r.ok && r.errors)}`);
    return /elements = \{ ([^}]*) \}/.exec(r.text)?.[1];
  };
  for (const els of [
    ["10.0.0.0/8,tcp:1-100", "10.0.0.0/8,tcp:50"],
    ["10.0.0.0/8,tcp:50", "10.0.0.0/8,tcp:1-100"],
  ])
    assert.equal(setLine(els), "10.0.0.0/8 . tcp . 1-100");
  // The /8 covers both; the /24's ports are not among the /16's.
  const nested = ["10.1.1.0/24,tcp:40-60", "10.1.0.0/16,tcp:50", "10.0.0.0/8,tcp:1-100"];
  assert.equal(setLine(nested), "10.0.0.0/8 . tcp . 1-100");
  assert.equal(setLine([...nested].reverse()), "10.0.0.0/8 . tcp . 1-100");
  // An ipset save of a port range, one port per line, with the range itself: all but the range left out.
  const ports = Array.from({ length: 5000 }, (_, i) => `10.2.0.0/16,udp:${i + 1}`);
  assert.equal(
    setLine([...ports, "10.0.0.0/8,udp:1-5000", "10.2.3.4,udp:5001"]),
    "10.0.0.0/8 . udp . 1-5000, 10.2.3.4 . udp . 5001",
  );
  for (const els of [
    ["10.0.0.0/8,tcp:20-25", "10.1.0.0/16,tcp:22-30"],
    ["10.1.0.0/16,tcp:22-30", "10.0.0.0/8,tcp:20-25"],
    ["10.1.0.0/16,tcp:22-30", "10.1.0.0/16,tcp:20-25"],
  ]) {
    const r = render(els);
    assert.ok(!r.ok, els.join(" "));
    assert.deepEqual(
      r.errors.map((e) => e.code),
      ["nft_set_overlap"],
    );
  }
});

const dump = (...rules: string[]) =>
  `*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${rules.join("\n")}\nCOMMIT\n`;

test("import: hash:net,port and hash:ip,port from `ipset save`, looked up src,dst: a tuple set and match.tupleSet", () => {
  const ipsets = [
    "create allow-net-port hash:net,port family inet hashsize 1024 maxelem 65536",
    "add allow-net-port 10.0.0.0/8,tcp:22",
    "add allow-net-port 10.1.2.3/16,udp:53", // host bits: ipset stores the network
    "add allow-net-port 192.0.2.1,8080", // no protocol: tcp
    "create dns hash:ip,port family inet",
    "add dns 192.0.2.53,udp:53",
    "",
  ].join("\n");
  const r = importPolicy(
    "iptables-save",
    dump(
      "-A INPUT -m set --match-set allow-net-port src,dst -j ACCEPT",
      "-A OUTPUT -p udp -m set ! --match-set dns dst,dst -j DROP",
    ),
    { ipsets },
  );
  assert.deepEqual(r.errors, []);
  const p = r.policy!;
  assert.deepEqual(p.sets.allow_net_port, {
    type: "ipv4_addr,port",
    interval: true,
    size: 65536,
    elements: ["10.0.0.0/8,tcp:22", "10.1.0.0/16,udp:53", "192.0.2.1,tcp:8080"],
  });
  assert.deepEqual(p.sets.dns, { type: "ipv4_addr,port", elements: ["192.0.2.53,udp:53"] });
  const rules = Object.values(p.chains).flatMap((c) => c.rules.map((x) => x.match));
  assert.ok(rules.some((m) => JSON.stringify(m?.tupleSet) === '{"set":"allow_net_port","directions":["src","dst"]}'));
  assert.ok(rules.some((m) => JSON.stringify(m?.tupleSet) === '{"not":{"set":"dns","directions":["dst","dst"]}}'));
  assert.deepEqual(validatePolicy(p).errors, []);
  assert.ok(renderNft(p).ok);
  assert.ok(renderIptables(p).ok);
});

test("import: a tuple's port range is one ipset entry per port: maxelem, a clash and a del count each port, as ipset does", () => {
  const run = (ipsets: string) =>
    importPolicy("iptables-save", dump("-A INPUT -m set --match-set t src,dst -j ACCEPT"), { ipsets });
  const errs = (ipsets: string) => run(ipsets).errors.map((e) => `${e.code}: ${e.message}`);
  // ipset: Hash is full (100 entries, maxelem 10).
  assert.match(
    errs("create t hash:ip,port family inet maxelem 10\nadd t 1.2.3.4,tcp:1-100\n").join(),
    /import_invalid_value: .*would hold 100 elements, more than its maxelem 10/,
  );
  // ipset: already added (port 85 is in the range), without -exist.
  assert.match(
    errs("create t hash:ip,port family inet\nadd t 1.2.3.4,tcp:80-90\nadd t 1.2.3.4,tcp:85\n").join(),
    /import_conflict: .*1\.2\.3\.4,tcp:85 is in ipset t already/,
  );
  // ipset deletes one port of a range; the policy keeps the rest as ranges.
  const r = run(
    "create t hash:ip,port family inet\nadd t 1.2.3.4,tcp:80-90\ndel t 1.2.3.4,tcp:85\nadd t 1.2.3.4,udp:53\n",
  );
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.policy!.sets.t!.elements, ["1.2.3.4,tcp:80-84", "1.2.3.4,tcp:86-90", "1.2.3.4,udp:53"]);
  const back = run(
    "create t hash:ip,port family inet\nadd t 1.2.3.4,tcp:80-90\ndel t 1.2.3.4,tcp:85\nadd t 1.2.3.4,tcp:85\n",
  );
  assert.deepEqual(back.errors, []);
  assert.deepEqual(back.policy!.sets.t!.elements, ["1.2.3.4,tcp:80-90"]);
  // Deleting a port the range does not hold is refused, as ipset refuses it.
  assert.match(
    errs("create t hash:ip,port family inet\nadd t 1.2.3.4,tcp:80-90\ndel t 1.2.3.4,tcp:91\n").join(),
    /import_conflict: .*1\.2\.3\.4,tcp:91 is not in ipset t/,
  );
});

test("import: what a tuple set refuses, with the reason", () => {
  const errs = (ipsets: string, rule = "-A INPUT -m set --match-set t src,dst -j ACCEPT") =>
    importPolicy("iptables-save", dump(rule), { ipsets }).errors.map((e) => `${e.code}: ${e.message}`);
  const net = "create t hash:net,port family inet\n";
  assert.match(errs(`${net}add t 0.0.0.0/0,tcp:22\n`).join(), /import_invalid_value: .*ipset refuses \/0/);
  assert.match(errs(`${net}add t 10.0.0.0/8,icmp:8/0\n`).join(), /import_unsupported: .*not PROTO:PORT/);
  // The null address: hash:ip,port refuses it (ipset: Invalid argument), hash:net,port takes it.
  for (const text of [
    "create t hash:ip,port family inet\nadd t 0.0.0.0,tcp:22\n",
    "create t hash:ip,port family inet\nadd t 0.0.0.0,udp:20-22\n",
    "create t hash:ip,port family inet\ndel t 0.0.0.0,tcp:22 -exist\n",
    "create t hash:ip,port family inet6\nadd t ::,tcp:22\n",
  ])
    assert.match(
      errs(text).join(),
      /import_invalid_value: .*the null address, which ipset refuses in a hash:ip,port set/,
      text,
    );
  assert.deepEqual(errs(`${net}add t 0.0.0.0,tcp:22\n`), []);
  assert.match(
    errs("create t hash:ip,port\nadd t 10.0.0.0/30,tcp:22\n").join(),
    /import_unsupported: .*a prefix in a hash:ip,port set/,
  );
  assert.match(
    errs(net, "-A INPUT -m set --match-set t src -j ACCEPT").join(),
    /import_unsupported: .*holds tuples of 2 fields; it is imported when looked up with 2 directions/,
  );
  assert.match(
    errs(net, "-A INPUT -j SET --add-set t src,dst").join(),
    /import_unsupported: .*adding to a tuple set \(-j SET\) is not imported/,
  );
  assert.match(
    errs("create t hash:ip,port family inet6\nadd t 2001:DB8:0::53,udp:53\n").join(),
    /import_conflict: .*the set holds IPv6 \(family inet6\) addresses, but this is an iptables rule/,
  );
  assert.match(
    errs("create t hash:net,iface family inet\n").join(),
    /import_unsupported: .*ipset type hash:net,iface is not imported/,
  );
  // Names an object has by inheritance are no ipset types either (ipset: "Syntax error: unknown settype").
  for (const type of ["constructor", "toString", "__proto__", "hasOwnProperty"])
    assert.match(errs(`create t ${type}\n`).join(), /import_unsupported: .*is not imported/, type);
});
