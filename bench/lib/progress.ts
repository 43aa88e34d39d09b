// A progress line on stderr for long steps (building or loading a 1M-element set):
// on a TTY one line rewritten in place every 250 ms, otherwise one line every 5 s.
// Never on stdout, which carries only the final tables.

export interface Progress {
  /** Change the label of the running step. */
  update(label: string): void;
  /** Stop the ticker and print the step's final time. */
  done(note?: string): number;
}

const tty = process.stderr.isTTY === true;

export function step(label: string): Progress {
  const t0 = performance.now();
  let current = label;
  const show = (final: boolean, note?: string) => {
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    const text = `[bench] ${current} ... ${s} s${note ? ` ${note}` : ""}`;
    if (tty) process.stderr.write(`\r\x1b[K${text}${final ? "\n" : ""}`);
    else if (final) process.stderr.write(`${text}\n`);
    else process.stderr.write(`${text}\n`);
  };
  if (!tty) process.stderr.write(`[bench] ${current} ...\n`);
  const timer = setInterval(() => show(false), tty ? 250 : 5000);
  timer.unref();
  return {
    update(l: string) {
      current = l;
      if (tty) show(false);
    },
    done(note?: string) {
      clearInterval(timer);
      current = label;
      show(true, note);
      return performance.now() - t0;
    },
  };
}

/** Run `fn` under a progress line. */
export async function withStep<T>(label: string, fn: (p: Progress) => Promise<T> | T): Promise<T> {
  const p = step(label);
  try {
    const r = await fn(p);
    p.done();
    return r;
  } catch (e) {
    p.done("(failed)");
    throw e;
  }
}

/** A one-off note on stderr. */
export function note(text: string): void {
  process.stderr.write(`[bench] ${text}\n`);
}
