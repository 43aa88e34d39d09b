// Standard output for the local verbs (render, validate), written to fd 1 directly.
// `process.stdout` is built on first use, and what it builds depends on fd 1: a stream
// over a file, net's socket machinery for a pipe (`palisade render x | nft -f -`), tty for
// a terminal. Loading that cost render 2-3 ms of its start-up (bench/footprint.ts,
// docs/build.md), for one write.
//
// A write to a non-blocking fd can fail with EAGAIN when the reader is slow. Node itself
// makes fd 1 non-blocking once `process.stdout` exists for a pipe, and a parent may have
// made it so too: from the first EAGAIN on, the rest goes through `process.stdout`, which
// waits for the reader (and every later write too, so the output stays in order).
//
// A reader that goes away (`palisade render x | head`) ends the output quietly, as a
// program that dies of SIGPIPE does, without an error on stderr; the exit status stays the
// verb's own.
import { writeSync } from "node:fs";

let viaStream = false;
let readerGone = false;

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

export function writeStdout(text: string): void {
  if (readerGone) return;
  if (viaStream) {
    process.stdout.write(text);
    return;
  }
  const bytes = Buffer.from(text, "utf8");
  let done = 0;
  while (done < bytes.length) {
    try {
      done += writeSync(1, bytes, done, bytes.length - done);
    } catch (e) {
      if (code(e) === "EPIPE") {
        readerGone = true;
        return;
      }
      if (code(e) !== "EAGAIN") throw e;
      viaStream = true;
      process.stdout.on("error", (err) => {
        if (code(err) !== "EPIPE") throw err;
        readerGone = true;
      });
      process.stdout.write(bytes.subarray(done));
      return;
    }
  }
}
