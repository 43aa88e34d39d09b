// writeStdout (src/cli/stdout.ts), how `palisade render` and `validate` print: every byte
// arrives, in order, whether fd 1 is a file, a shell's pipe (blocking), or a non-blocking pipe
// whose reader is not reading yet (Node makes a pipe's fd 1 so once process.stdout exists;
// tsx's loader does too). There the write must hand the rest to process.stdout, neither fail
// nor block: without that, the last case was seen failing with EAGAIN. Each case is a child
// process writing 4 MiB and then a line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSync } from "esbuild";

// The children run plain node on the module built to CommonJS, as bin/palisade runs the
// build: under tsx, fd 1 is non-blocking before any test code runs (tsx's loader makes it so).
const MODULE = buildSync({
  entryPoints: [join(import.meta.dirname, "../../../src/cli/stdout.ts")],
  format: "cjs",
  platform: "node",
  write: false,
}).outputFiles[0]!.text;
const BODY = "0123456789abcdef".repeat(256 * 1024); // 4 MiB, far above a pipe's 64 KiB buffer
const EXPECTED = BODY + "END\n";

/** The child: optionally builds process.stdout first (Node then makes a pipe's fd 1 non-blocking). */
const child = (touchStdout: boolean) => `const m = { exports: {} };
new Function("module", "exports", "require", ${JSON.stringify(MODULE)})(m, m.exports, require);
const { writeStdout } = m.exports;
${touchStdout ? "void process.stdout;" : ""}
writeStdout("0123456789abcdef".repeat(256 * 1024));
writeStdout("END\\n");
process.stderr.write("returned\\n");`;

function start(touchStdout: boolean, stdout: "pipe" | number) {
  return spawn(process.execPath, ["-e", child(touchStdout)], {
    stdio: ["ignore", stdout, "pipe"],
    env: { ...process.env, NODE_OPTIONS: "" },
  });
}

/** The child behind `| cat`: its fd 1 is the shell's pipe, which is blocking. */
function startBehindShellPipe() {
  return spawn("sh", ["-c", '"$NODE" -e "$CHILD" | cat'], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NODE_OPTIONS: "", NODE: process.execPath, CHILD: child(false) },
  });
}

function exit(p: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error("the child did not finish within 60 s"));
    }, 60_000);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

test("a shell's pipe (blocking) gets every byte in order", async () => {
  const p = startBehindShellPipe();
  const chunks: Buffer[] = [];
  p.stdout!.on("data", (c: Buffer) => chunks.push(c));
  let err = "";
  p.stderr!.on("data", (c: Buffer) => (err += c));
  assert.equal(await exit(p), 0, err);
  assert.equal(err, "returned\n");
  assert.ok(Buffer.concat(chunks).toString("utf8") === EXPECTED, "output differs");
});

test("a file gets every byte in order", async () => {
  const dir = mkdtempSync(join(tmpdir(), "palisade-stdout-"));
  try {
    const file = join(dir, "out");
    const fd = openSync(file, "w");
    const p = start(false, fd);
    closeSync(fd);
    let err = "";
    p.stderr!.on("data", (c: Buffer) => (err += c));
    assert.equal(await exit(p), 0, err);
    assert.ok(readFileSync(file, "utf8") === EXPECTED, "output differs");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a non-blocking pipe that nobody reads yet: the writes return, then every byte arrives in order", async () => {
  const p = start(true, "pipe");
  // Read nothing until the child says both writes returned: a write that blocked would
  // never return (the test times out), one that threw EAGAIN ends the child with an error.
  p.stdout!.pause();
  const chunks: Buffer[] = [];
  let err = "";
  const returned = new Promise<void>((resolve) =>
    p.stderr!.on("data", (c: Buffer) => {
      err += c;
      if (err.includes("returned\n")) resolve();
    }),
  );
  const code = exit(p);
  await Promise.race([returned, code.then(() => assert.fail(`the child ended before its writes returned: ${err}`))]);
  p.stdout!.on("data", (c: Buffer) => chunks.push(c));
  p.stdout!.resume();
  assert.equal(await code, 0, err);
  assert.ok(Buffer.concat(chunks).toString("utf8") === EXPECTED, "output differs");
});
