// The agent's program check: found on PATH (executable files only), each missing one with
// the reason an operator reads in `palisade hosts show`.
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { checkPrograms, findProgram } from "../../../src/agent/programs.ts";

describe("agent program check", () => {
  let a: string;
  let b: string;
  before(async () => {
    a = await mkdtemp(join(tmpdir(), "palisade-prog-a-"));
    b = await mkdtemp(join(tmpdir(), "palisade-prog-b-"));
    await writeFile(join(a, "nft"), "#!/bin/sh\n");
    await chmod(join(a, "nft"), 0o755);
    await writeFile(join(a, "tcpdump"), "not executable\n");
    await writeFile(join(b, "conntrack"), "#!/bin/sh\n");
    await chmod(join(b, "conntrack"), 0o755);
  });
  after(async () => {
    await rm(a, { recursive: true, force: true });
    await rm(b, { recursive: true, force: true });
  });

  it("finds executables along PATH, in order, and skips files that are not executable", () => {
    assert.equal(findProgram("nft", `${a}:${b}`), join(a, "nft"));
    assert.equal(findProgram("conntrack", `${a}:${b}`), join(b, "conntrack"));
    assert.equal(findProgram("tcpdump", `${a}:${b}`), undefined);
    assert.equal(findProgram("nft", ""), undefined);
  });

  it("reports each missing program with what stops working", () => {
    const r = checkPrograms(`${a}:${b}`);
    assert.deepEqual(Object.keys(r.found).sort(), ["conntrack", "nft"]);
    assert.deepEqual(r.missing, [
      { program: "tcpdump", reason: "log events unavailable: tcpdump not installed" },
      {
        program: "ip",
        reason: "interface names of log events unavailable: ip not installed (Debian package iproute2)",
      },
      {
        program: "setpriv",
        reason:
          "a killed agent's tcpdump outlives it and keeps its NFLOG group: setpriv not installed (Debian package util-linux)",
      },
    ]);
  });
});
