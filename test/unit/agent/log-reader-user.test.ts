// The user a root agent's tcpdump runs as (logs.ts readerUser): the tcpdump user's own
// numeric ids when /etc/passwd has it, nobody/nogroup without supplementary groups when it
// does not; never uid or gid 0.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { holdsSetpcap, readerUser } from "../../../src/agent/telemetry/logs.ts";

describe("log reader user (root agent)", () => {
  it("the tcpdump user by its ids, with its groups", () => {
    const passwd = "root:x:0:0:root:/root:/bin/bash\ntcpdump:x:108:111::/nonexistent:/usr/sbin/nologin\n";
    assert.deepEqual(readerUser(passwd), ["--reuid", "108", "--regid", "111", "--init-groups"]);
  });
  it("no tcpdump user: nobody/nogroup, no supplementary groups", () => {
    assert.deepEqual(readerUser("root:x:0:0:root:/root:/bin/bash\n"), [
      "--reuid",
      "65534",
      "--regid",
      "65534",
      "--clear-groups",
    ]);
    assert.deepEqual(readerUser(""), ["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
  });
  it("a tcpdump entry with uid or gid 0 is not used", () => {
    assert.deepEqual(readerUser("tcpdump:x:0:111::/:/bin/false\n")[1], "65534");
    assert.deepEqual(readerUser("tcpdump:x:108:0::/:/bin/false\n")[1], "65534");
  });
  it("uid or gid 0 written with more digits is 0 too: not used", () => {
    assert.deepEqual(readerUser("tcpdump:x:00:111::/:/bin/false\n")[1], "65534");
    assert.deepEqual(readerUser("tcpdump:x:108:000::/:/bin/false\n")[3], "65534");
    assert.deepEqual(readerUser("tcpdump:x:0108:0111::/:/bin/false\n"), [
      "--reuid",
      "108",
      "--regid",
      "111",
      "--init-groups",
    ]);
  });
  it("CAP_SETPCAP is bit 8 of CapEff", () => {
    const st = (eff: string) => `CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t${eff}\n`;
    assert.equal(holdsSetpcap(st("000001fffeffffff")), true);
    assert.equal(holdsSetpcap(st("0000000000000100")), true);
    assert.equal(holdsSetpcap(st("0000000000003000")), false);
    assert.equal(holdsSetpcap(st("00000000000030ff")), false);
    assert.equal(holdsSetpcap("Name:\tnode\n"), false);
  });
});
