// Fuzz (fast-check): random text, truncated real lines and token soup from the importer's
// own vocabulary never make importPolicy throw, never produce an internal error, and always
// report every input line. Termination needs no clock: every parser loop consumes input
// (a word, a character), and each run's input is bounded in size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { importPolicy, type ImportFormat } from "../../../src/engine/import/index.ts";

const FIXTURES = join(import.meta.dirname, "../../fixtures/import");
const REAL_LINES = ["hardening.sh", "xtables-addons.sh", "portfw.sh", "fwmark.sh", "autofw.sh", "idioms-first.sh"]
  .flatMap((f) => readFileSync(join(FIXTURES, f), "utf8").split("\n"))
  .filter((l) => l.trim() !== "" && !l.startsWith("#"));

const VOCAB = [
  "iptables",
  "ip6tables",
  "ipmasqadm",
  "ipchains",
  "ipfw",
  "-A",
  "-I",
  "-N",
  "-P",
  "-F",
  "-X",
  "-D",
  "-t",
  "nat",
  "mangle",
  "raw",
  "rawpost",
  "security",
  "filter",
  "INPUT",
  "FORWARD",
  "OUTPUT",
  "PREROUTING",
  "POSTROUTING",
  "input",
  "forward",
  "-s",
  "-d",
  "!",
  "-p",
  "tcp",
  "udp",
  "icmp",
  "all",
  "--dport",
  "--sport",
  "22",
  "1000:2000",
  "-i",
  "-o",
  "eth0",
  "eth+",
  "-m",
  "state",
  "conntrack",
  "--state",
  "--ctstate",
  "NEW,ESTABLISHED",
  "INVALID",
  "tcp",
  "--tcp-flags",
  "SYN,FIN",
  "SYN,RST",
  "ALL",
  "NONE",
  "--syn",
  "--icmp-type",
  "8",
  "echo-request",
  "limit",
  "--limit",
  "1/second",
  "--limit-burst",
  "5",
  "recent",
  "--set",
  "--update",
  "--rcheck",
  "--remove",
  "--seconds",
  "86400",
  "--hitcount",
  "60",
  "--name",
  "portscan",
  "--rsource",
  "--rdest",
  "quota2",
  "quota",
  "--quota",
  "--grow",
  "--no-change",
  "--packets",
  "length",
  "--length",
  "mark",
  "--mark",
  "0x1/0xff",
  "connmark",
  "iface",
  "--iface",
  "--up",
  "geoip",
  "--src-cc",
  "DE",
  "comment",
  "--comment",
  '"x y"',
  "addrtype",
  "--dst-type",
  "BROADCAST",
  "hashlimit",
  "--hashlimit-above",
  "--hashlimit-mode",
  "srcip",
  "--hashlimit-name",
  "multiport",
  "--dports",
  "22,80",
  "pknock",
  "--knockports",
  "4002,4001",
  "--time",
  "10",
  "-j",
  "-g",
  "ACCEPT",
  "DROP",
  "REJECT",
  "--reject-with",
  "tcp-reset",
  "LOG",
  "--log-prefix",
  "--log-level",
  "NFLOG",
  "MARK",
  "--set-mark",
  "--set-xmark",
  "CONNMARK",
  "--save-mark",
  "ACCOUNT",
  "--addr",
  "10.0.0.0/8",
  "--tname",
  "LOGMARK",
  "IPMARK",
  "--and-mask",
  "TEE",
  "--gateway",
  "RAWDNAT",
  "--to-destination",
  "RAWSNAT",
  "--to-source",
  "TARPIT",
  "DELUDE",
  "CHAOS",
  "STEAL",
  "SYSRQ",
  "CHECKSUM",
  "DHCPMAC",
  "NOTRACK",
  "CT",
  "--notrack",
  "MASQUERADE",
  "DNAT",
  "SNAT",
  "REDIRECT",
  "--to-ports",
  "NETMAP",
  "--to",
  "MIRROR",
  "MASQ",
  "portfw",
  "autofw",
  "mfw",
  "-a",
  "-L",
  "-R",
  "-r",
  "-h",
  "-c",
  "-u",
  "10.1.2.3",
  "192.168.0.0/16",
  "2001:db8::/32",
  "$X",
  "${Y}",
  "X=1",
  ";",
  "\\\n",
  "'",
  '"',
  "#",
  "|",
  "&&",
  "*filter",
  ":INPUT",
  "[0:0]",
  "COMMIT",
  "-",
  "--",
  "0",
  "65536",
  "-1",
];

function check(format: ImportFormat, source: string): void {
  const r = importPolicy(format, source);
  assert.ok(
    !r.report.some((l) => /internal importer error/.test(l.reason ?? "")),
    JSON.stringify(r.report.find((l) => /internal/.test(l.reason ?? ""))),
  );
  const lines = source.replace(/\r\n?/g, "\n").replace(/\n$/, "").split("\n").length;
  if (source.length > 0) {
    const seen = new Set(r.report.map((l) => l.line));
    for (let n = 1; n <= lines; n++)
      assert.ok(seen.has(n), `line ${n} of ${JSON.stringify(source)} has no report entry`);
  }
  for (const l of r.report) assert.ok(["imported", "lifted", "skipped", "error"].includes(l.status));
}

const formats = fc.constantFrom<ImportFormat>("iptables", "iptables-save", "ipmasqadm");

test("random text never throws", () => {
  fc.assert(
    fc.property(formats, fc.string({ maxLength: 400, unit: "binary" }), (f, s) => check(f, s)),
    { numRuns: 500 },
  );
});

test("truncated and spliced real lines never throw", () => {
  const line = fc.constantFrom(...REAL_LINES);
  fc.assert(
    fc.property(formats, fc.array(fc.tuple(line, fc.nat(), fc.nat()), { minLength: 1, maxLength: 6 }), (f, parts) => {
      const src = parts
        .map(([l, a, b]) => l.slice(Math.min(a, b) % (l.length + 1), Math.max(a, b) % (l.length + 1) || l.length))
        .join("\n");
      check(f, src);
    }),
    { numRuns: 500 },
  );
});

test("token soup from the real vocabulary never throws", () => {
  const soup = fc
    .array(
      fc.array(fc.constantFrom(...VOCAB), { maxLength: 25 }).map((ws) => ws.join(" ")),
      { minLength: 1, maxLength: 8 },
    )
    .map((ls) => ls.join("\n"));
  fc.assert(
    fc.property(formats, soup, (f, s) => check(f, s)),
    { numRuns: 1000 },
  );
  // Lines that start like real commands reach deep into the option parsers.
  const cmd = fc.tuple(
    fc.constantFrom(
      "iptables -A INPUT",
      "ip6tables -t nat -A PREROUTING",
      "-A FORWARD",
      "ipmasqadm portfw -a",
      "ipmasqadm mfw -I",
      "ipchains -I input",
      "iptables -t mangle -A POSTROUTING",
    ),
    fc.array(fc.constantFrom(...VOCAB), { maxLength: 20 }),
  );
  fc.assert(
    fc.property(formats, fc.array(cmd, { minLength: 1, maxLength: 6 }), (f, cs) =>
      check(f, cs.map(([h, ws]) => `${h} ${ws.join(" ")}`).join("\n")),
    ),
    { numRuns: 1500 },
  );
});

test("a large input finishes (linear work per character and word)", () => {
  const big = Array.from(
    { length: 5000 },
    (_, i) =>
      `iptables -A INPUT -s 10.${i % 256}.${(i >> 8) % 256}.0/24 -p tcp --dport ${i % 65535} -m comment --comment "r${i}" -j DROP`,
  ).join("\n");
  const r = importPolicy("iptables", big);
  assert.equal(r.report.length, 5000);
  assert.equal(r.policy?.chains.input?.rules.length, 5000);
});
