// The user a root agent's tcpdump runs as (logs.ts readerUser): the tcpdump user's own
// numeric ids when /etc/passwd has it, nobody/nogroup without supplementary groups when it
// does not; never uid or gid 0.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readerUser } from "../../../src/agent/telemetry/logs.ts";

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
});
