// writeStdout (src/cli/stdout.ts), how `palisade render` and `validate` print: every byte
// arrives, in order, whether fd 1 is a file, a shell's pipe (blocking), or a non-blocking pipe
// whose reader is not reading yet (Node makes a pipe's fd 1 so once process.stdout exists;
// tsx's loader does too). There the write must hand the rest to process.stdout, neither fail
// nor block (seen failing with EAGAIN without that), and every later write must follow it
// there, even once the pipe has room again (seen out of order without that). A reader that
// goes away ends the output quietly on either path (seen: an error, a stack trace).
// Each case is a child process writing 4 MiB and then a line.
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

/** A child that loads writeStdout and runs `code`; BODY is in scope. */
const child = (code: string) => `const m = { exports: {} };
new Function("module", "exports", "require", ${JSON.stringify(MODULE)})(m, m.exports, require);
const { writeStdout } = m.exports;
const BODY = "0123456789abcdef".repeat(256 * 1024);
${code}`;

/** Both writes, then "returned" on stderr; `touchStdout`: build process.stdout first (a pipe's fd 1 turns non-blocking). */
const twoWrites = (touchStdout: boolean) =>
  child(`${touchStdout ? "void process.stdout;" : ""}
writeStdout(BODY);
writeStdout("END\\n");
process.stderr.write("returned\\n");`);

function start(code: string, stdout: "pipe" | number, stdin: "ignore" | "pipe" = "ignore") {
  return spawn(process.execPath, ["-e", code], {
    stdio: [stdin, stdout, "pipe"],
    env: { ...process.env, NODE_OPTIONS: "" },
  });
}

/** `code` in a node whose fd 1 is the shell's pipe (blocking) into `consumer`; pipefail: the status is the child's. */
function startBehindShellPipe(code: string, consumer: string) {
  return spawn("bash", ["-c", `set -o pipefail; "$NODE" -e "$CHILD" | ${consumer}`], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NODE_OPTIONS: "", NODE: process.execPath, CHILD: code },
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

function collect(p: ReturnType<typeof spawn>) {
  const out: Buffer[] = [];
  const err = { text: "" };
  p.stdout?.on("data", (c: Buffer) => out.push(c));
  p.stderr!.on("data", (c: Buffer) => (err.text += c));
  return { out: () => Buffer.concat(out).toString("utf8"), err };
}

/** The child's stderr so far, and a wait until it matches `re` (failing if the child ends first). */
function watchStderr(p: ReturnType<typeof spawn>, code: Promise<number | null>) {
  let text = "";
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  p.stderr!.on("data", (c: Buffer) => {
    text += c;
    for (const w of [...waiters]) {
      const m = w.re.exec(text);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  return {
    text: () => text,
    until(re: RegExp): Promise<RegExpExecArray> {
      const m = re.exec(text);
      if (m) return Promise.resolve(m);
      const seen = new Promise<RegExpExecArray>((resolve) => waiters.push({ re, resolve }));
      return Promise.race([seen, code.then(() => assert.fail(`the child ended before ${re}: ${text}`))]);
    },
  };
}

test("a shell's pipe (blocking) gets every byte in order", async () => {
  const p = startBehindShellPipe(twoWrites(false), "cat");
  const r = collect(p);
  assert.equal(await exit(p), 0, r.err.text);
  assert.equal(r.err.text, "returned\n");
  assert.ok(r.out() === EXPECTED, "output differs");
});

test("a file gets every byte in order", async () => {
  const dir = mkdtempSync(join(tmpdir(), "palisade-stdout-"));
  try {
    const file = join(dir, "out");
    const fd = openSync(file, "w");
    const p = start(twoWrites(false), fd);
    closeSync(fd);
    const r = collect(p);
    assert.equal(await exit(p), 0, r.err.text);
    assert.ok(readFileSync(file, "utf8") === EXPECTED, "output differs");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a non-blocking pipe that nobody reads yet: the writes return, then every byte arrives in order", async () => {
  const p = start(twoWrites(true), "pipe");
  // Read nothing until the child says both writes returned: a write that blocked would
  // never return (the test times out), one that threw EAGAIN ends the child with an error.
  p.stdout!.pause();
  const code = exit(p);
  await watchStderr(p, code).until(/returned\n/);
  const chunks: Buffer[] = [];
  p.stdout!.on("data", (c: Buffer) => chunks.push(c));
  p.stdout!.resume();
  assert.equal(await code, 0);
  assert.ok(Buffer.concat(chunks).toString("utf8") === EXPECTED, "output differs");
});

test("after a fallback, a later write waits behind the queued rest even when the pipe has room again", async () => {
  // The child queues most of BODY in process.stdout and says how much of it reached the
  // pipe; then it blocks reading stdin, so its queue cannot drain. The parent reads exactly
  // that much (the pipe is then empty), stops reading, and lets the child write "END".
  const p = start(
    child(`void process.stdout;
writeStdout(BODY);
process.stderr.write("first " + (BODY.length - process.stdout._handle.writeQueueSize) + "\\n");
require("node:fs").readSync(0, Buffer.alloc(1));
writeStdout("END\\n");
process.stderr.write("second\\n");`),
    "pipe",
    "pipe",
  );
  const code = exit(p);
  const stderr = watchStderr(p, code);
  const inPipe = Number((await stderr.until(/first (\d+)\n/))[1]);
  assert.ok(inPipe > 0 && inPipe < BODY.length, `the child wrote ${inPipe} bytes before queueing: ${stderr.text()}`);
  const chunks: Buffer[] = [];
  let read = 0;
  await new Promise<void>((resolve) => {
    const take = (c: Buffer) => {
      chunks.push(c);
      read += c.length;
      if (read >= inPipe) {
        p.stdout!.pause();
        p.stdout!.off("data", take);
        resolve();
      }
    };
    p.stdout!.on("data", take);
  });
  assert.equal(read, inPipe);
  p.stdin!.end("x");
  await stderr.until(/second\n/);
  p.stdout!.on("data", (c: Buffer) => chunks.push(c));
  p.stdout!.resume();
  assert.equal(await code, 0);
  const out = Buffer.concat(chunks).toString("utf8");
  assert.equal(out.indexOf("END"), BODY.length, "END is not at the end");
  assert.ok(out === EXPECTED, "output differs");
});

test("a reader that goes away (| head -c 10): the child stops quietly, status 0", async () => {
  const p = startBehindShellPipe(twoWrites(false), "head -c 10");
  const r = collect(p);
  assert.equal(await exit(p), 0, r.err.text);
  assert.equal(r.err.text, "returned\n");
  assert.equal(r.out(), BODY.slice(0, 10));
});

test("a reader that goes away after a fallback: the child stops quietly, status 0", async () => {
  const p = start(twoWrites(true), "pipe");
  let err = "";
  p.stderr!.on("data", (c: Buffer) => (err += c));
  const code = exit(p);
  // The first chunk, then the read end closes while most of BODY waits in the child's queue.
  await new Promise<void>((resolve) => p.stdout!.once("data", () => resolve()));
  p.stdout!.destroy();
  assert.equal(await code, 0, err);
  assert.equal(err, "returned\n");
});
