// check = `nft -c -f -` (the kernel validates the whole batch, then aborts it);
// apply = one `nft -f -` run, which the kernel commits entirely or not at all.
// Both refuse text that touches a non-Palisade table before nft ever sees it.

import { serialize } from "../nft/serialize.ts";
import { Transaction } from "../nft/transaction.ts";
import { NftError } from "./errors.ts";
import { assertPalisadeOnly, type TouchedTable } from "./guard.ts";
import { runNft, type DriverOptions } from "./nft.ts";
import { readSetSize } from "./read.ts";

export interface ApplyOptions extends DriverOptions {
  /** Run `nft -c` first and stop there if it fails (default false: nft -f is atomic already). */
  checkFirst?: boolean;
}

export interface ApplyResult {
  /** Tables the text touched, in statement order (deduplicated). */
  tables: TouchedTable[];
  /** Wall time of the nft run(s), milliseconds. */
  durationMs: number;
}

function textOf(input: string | Transaction): string {
  return input instanceof Transaction ? serialize(input) : input;
}

function dedupe(t: TouchedTable[]): TouchedTable[] {
  const seen = new Set<string>();
  return t.filter((x) => {
    const k = `${x.family} ${x.name}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** When the failing text only appended elements, the set's size is in the kernel, not the text. */
async function withSetSize(e: unknown, opts: DriverOptions): Promise<never> {
  if (e instanceof NftError && e.code === "set_full" && e.set && e.size === undefined && e.location?.text) {
    const m = /^\s*add\s+element\s+(\S+)\s+(\S+)\s+/.exec(e.location.text);
    const size = m ? await readSetSize(m[1]!, m[2]!, e.set, opts).catch(() => undefined) : undefined;
    if (size !== undefined) {
      throw new NftError(
        "set_full",
        `set ${e.set} is full (size ${size}): the kernel refused more elements; raise the set's size or remove elements`,
        {
          kernelMessage: e.kernelMessage,
          exitCode: e.exitCode,
          stderr: e.stderr,
          location: e.location,
          set: e.set,
          size,
        },
      );
    }
  }
  throw e;
}

/** Validate with the kernel without changing anything. Resolves, or throws NftError. */
export async function check(input: string | Transaction, opts: DriverOptions = {}): Promise<ApplyResult> {
  const text = textOf(input);
  const tables = dedupe(assertPalisadeOnly(text));
  const t0 = performance.now();
  await runNft(["-c", "-f", "-"], { ...opts, stdin: text }).catch((e) => withSetSize(e, opts));
  return { tables, durationMs: performance.now() - t0 };
}

/** Apply atomically. On any error nothing changed, and an NftError says why. */
export async function apply(input: string | Transaction, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const text = textOf(input);
  const tables = dedupe(assertPalisadeOnly(text));
  if (text.trim().length === 0) return { tables, durationMs: 0 };
  const t0 = performance.now();
  if (opts.checkFirst) await runNft(["-c", "-f", "-"], { ...opts, stdin: text }).catch((e) => withSetSize(e, opts));
  await runNft(["-f", "-"], { ...opts, stdin: text }).catch((e) => withSetSize(e, opts));
  return { tables, durationMs: performance.now() - t0 };
}
