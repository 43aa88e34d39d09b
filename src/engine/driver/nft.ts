// The only place in Palisade that starts `nft`. Arguments go as an array (never
// through a shell); ruleset text goes on stdin (`-f -`), which avoids argv limits for
// large sets. With `netns` the command runs as `ip netns exec <ns> nft ...`.

import { spawn } from "node:child_process";
import { KERNEL_FEATURES, missingFeatureAt } from "../nft/kernel-features.ts";
import { NftError, type NftErrorCode, type NftErrorLocation } from "./errors.ts";

export interface DriverOptions {
  /** Run inside this network namespace (`ip netns exec NS nft ...`). */
  netns?: string;
  /** Kill nft after this long. Default 60 s: a 1M-element set loads in ~3 s here. */
  timeoutMs?: number;
  /** Path of the nft binary (default "nft" on PATH). */
  nftPath?: string;
  /** Path of the ip binary used for namespaces (default "ip" on PATH). */
  ipPath?: string;
  /** Refuse output larger than this many bytes (default 512 MiB). */
  maxOutputBytes?: number;
}

export interface RunOptions extends DriverOptions {
  /** Text written to nft's stdin. */
  stdin?: string;
  /** The ruleset text nft read, to quote the failing line in errors (defaults to stdin). */
  source?: string;
}

export interface NftResult {
  stdout: string;
  stderr: string;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_OUTPUT = 512 * 1024 * 1024;
const NETNS_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export function checkNetns(ns: string): string {
  if (!NETNS_RE.test(ns) || ns === "." || ns === "..") {
    throw new NftError("invalid_argument", `network namespace name ${JSON.stringify(ns)} is not valid`);
  }
  return ns;
}

export function commandFor(args: readonly string[], opts: DriverOptions = {}): { file: string; argv: string[] } {
  const nft = opts.nftPath ?? "nft";
  if (opts.netns === undefined) return { file: nft, argv: [...args] };
  return { file: opts.ipPath ?? "ip", argv: ["netns", "exec", checkNetns(opts.netns), nft, ...args] };
}

/** Run nft with `args`; resolve with its output on exit 0, reject with a classified NftError otherwise. */
export function runNft(args: readonly string[], opts: RunOptions = {}): Promise<NftResult> {
  const { file, argv } = commandFor(args, opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxOut = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    // Output is decoded as it arrives (the stream's own utf8 decoder keeps split
    // characters whole), so each pipe buffer is garbage at once instead of all of them
    // being held until the end and then copied twice (concat, toString).
    const out: string[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let settled = false;
    let killedFor: "timeout" | "output" | undefined;
    const finish = (e: NftError | undefined, r?: NftResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (e) reject(e);
      else resolve(r!);
    };
    const timer = setTimeout(() => {
      killedFor = "timeout";
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (b: string) => {
      outBytes += b.length; // characters: bytes for nft's ASCII output, fewer otherwise
      if (outBytes > maxOut) {
        killedFor = "output";
        child.kill("SIGKILL");
        return;
      }
      out.push(b);
    });
    child.stderr.on("data", (b: Buffer) => {
      if (err.length < 1024) err.push(b);
    });
    child.on("error", (e: NodeJS.ErrnoException) => {
      const code: NftErrorCode = e.code === "ENOENT" || e.code === "EACCES" ? "nft_not_found" : "nft_failed";
      finish(
        new NftError(
          code,
          code === "nft_not_found"
            ? `cannot run ${file}: ${e.message}; install nftables (and iproute2 for namespaces)`
            : `cannot run ${file}: ${e.message}`,
          { cause: e },
        ),
      );
    });
    // nft may exit before reading all of stdin (e.g. on a parse error); that is not our error.
    child.stdin.on("error", () => {});
    child.on("close", (exitCode) => {
      const stdout = out.splice(0).join("");
      const stderr = Buffer.concat(err).toString("utf8");
      if (killedFor === "timeout") {
        finish(
          new NftError(
            "nft_timeout",
            `nft ${args.join(" ")} did not finish within ${timeoutMs} ms and was killed; a batch it had sent may be committed (the kernel commits inside nft's send, before the acks nft waits for)`,
            { stderr, exitCode },
          ),
        );
      } else if (killedFor === "output") {
        finish(
          new NftError(
            "unexpected_output",
            `nft ${args.join(" ")} printed more than ${maxOut} bytes; raise maxOutputBytes`,
            { exitCode },
          ),
        );
      } else if (exitCode !== 0) {
        finish(classify(args, stderr, exitCode, opts.source ?? opts.stdin));
      } else {
        finish(undefined, { stdout, stderr });
      }
    });
    child.stdin.end(opts.stdin ?? "");
  });
}

const ERROR_LINE = /^(?:(?<file>[^\n:]+):(?<line>\d+):(?<col>\d+)(?:-\d+)?: )?Error: (?<msg>.*)$/m;

/** nft's first "Error:" line, its position, and the input line it echoed. */
export function parseNftStderr(stderr: string): { message?: string; location?: NftErrorLocation } {
  const m = ERROR_LINE.exec(stderr);
  if (!m?.groups) {
    const first = stderr.split("\n").find((l) => l.trim().length > 0);
    return { message: first?.trim() };
  }
  const message = m.groups.msg!.trim();
  if (m.groups.line === undefined) return { message };
  const after = stderr.slice(m.index + m[0].length + 1).split("\n");
  return { message, location: { line: Number(m.groups.line), column: Number(m.groups.col), text: after[0] } };
}

/**
 * nft resolves `meta skuid "name"` / `meta skgid "name"` on the loading host, as iptables'
 * owner match does, and refuses a name the host lacks ("User does not exist"). The sentence
 * names the user or group and the rule (its comment, else the statement), which the echoed
 * line may have cut.
 */
export function ownerRefusal(kernelMessage: string, location: NftErrorLocation, source?: string): string | undefined {
  const kind = /^(User|Group) does not exist$/.exec(kernelMessage)?.[1];
  if (!kind) return undefined;
  const line = source?.split("\n")[location.line - 1] ?? location.text ?? "";
  const name = /^"?([^"\s;}]+)/.exec(line.slice(location.column - 1))?.[1] ?? "?";
  const comment = /\bcomment "((?:[^"\\]|\\.)*)"/.exec(line)?.[1];
  const chain = /^\s*(?:add|insert)\s+rule\s+\S+\s+\S+\s+(\S+)/.exec(line)?.[1];
  const rule = comment
    ? `rule "${comment}"${chain ? ` of chain ${chain}` : ""}`
    : `the rule at line ${location.line} (${line.trim().slice(0, 120)})`;
  const [what, key] = kind === "User" ? ["user", "skuid"] : ["group", "skgid"];
  return (
    `nft refused the ruleset: ${rule} matches ${what} ${name} by name (${key}), and this host has no ${what} ` +
    `${name}; nft, like iptables, looks the name up on the host that loads the rule: create the ${what} ` +
    `there or match its numeric id`
  );
}

/**
 * A kernel without a statement's module answers "No such file or directory" and nft points
 * at the statement (measured with nft 1.0.6 on a kernel without CONFIG_NFT_QUEUE:
 * `/dev/stdin:3:17-21: Error: Could not process rule: No such file or directory`, the caret
 * under `queue`). The bare ENOENT names neither the feature nor the fix; this does.
 */
export function featureRefusal(
  kernelMessage: string,
  location: NftErrorLocation,
  source?: string,
): { feature: string; message: string } | undefined {
  // The echoed line is the input line as nft read it; the source has it in full when known.
  const line = source?.split("\n")[location.line - 1] ?? location.text ?? "";
  const feature = missingFeatureAt(kernelMessage, line, location.column);
  if (!feature) return undefined;
  const f = KERNEL_FEATURES[feature];
  return {
    feature,
    message:
      `the kernel has no ${f.what}: it refused the rule at line ${location.line} (${line.trim().slice(0, 120)}) ` +
      `with "${kernelMessage}"; nothing was applied. To use it, ${f.remedy}`,
  };
}

function classify(
  args: readonly string[],
  stderr: string,
  exitCode: number | null,
  source: string | undefined,
): NftError {
  const { message, location } = parseNftStderr(stderr);
  const kernelMessage = message ?? `nft exited with status ${exitCode}`;
  const details = { kernelMessage, exitCode, stderr, location };
  const where = location
    ? ` (line ${location.line}${location.text ? `: ${location.text.trim().slice(0, 120)}` : ""})`
    : "";
  if (/Cannot open network namespace/.test(stderr)) {
    return new NftError("netns_not_found", `network namespace not found: ${kernelMessage}`, details);
  }
  if (/Operation not permitted/.test(kernelMessage)) {
    return new NftError(
      "permission_denied",
      `nft is not allowed to change the ruleset (run as root or with CAP_NET_ADMIN): ${kernelMessage}`,
      details,
    );
  }
  if (/Too many open files/.test(kernelMessage)) {
    const full = findFullSet(source, location);
    const what = full
      ? `set ${full.set}${full.size !== undefined ? ` is full (size ${full.size})` : " is full"}`
      : "a set is full";
    return new NftError(
      "set_full",
      `${what}: the kernel refused more elements${where}; raise the set's size or remove elements`,
      { ...details, set: full?.set, size: full?.size },
    );
  }
  const isQuery = args.some((a) => a === "list" || a === "reset");
  if (isQuery && /No such file or directory/.test(kernelMessage)) {
    return new NftError("not_found", `not found: nft ${args.filter((a) => a !== "-j").join(" ")}`, details);
  }
  const missing = location ? featureRefusal(kernelMessage, location, source) : undefined;
  if (missing) return new NftError("kernel_feature_missing", missing.message, { ...details, feature: missing.feature });
  const unknownOwner = location ? ownerRefusal(kernelMessage, location, source) : undefined;
  if (unknownOwner) return new NftError("nft_rejected", unknownOwner, details);
  if (/Error:/.test(stderr)) {
    return new NftError("nft_rejected", `nft refused the ruleset${where}: ${kernelMessage}`, details);
  }
  return new NftError("nft_failed", `nft ${args.join(" ")} failed with status ${exitCode}: ${kernelMessage}`, details);
}

/**
 * Which set a "Too many open files" refers to: walk up from the failing line to the
 * statement that adds elements (`add element F T NAME`, `add set F T NAME`, or a
 * `set NAME {` block), then look for that set's `size N` in the same text.
 */
export function findFullSet(
  source: string | undefined,
  location: NftErrorLocation | undefined,
): { set: string; size?: number; family?: string; table?: string } | undefined {
  if (!source || !location) return undefined;
  const lines = source.split("\n");
  let found: { set: string; family?: string; table?: string } | undefined;
  for (let i = Math.min(location.line, lines.length) - 1; i >= 0 && found === undefined; i--) {
    const l = lines[i]!;
    const cmd = /^\s*(?:add|create)\s+(?:element|set|map)\s+(\S+)\s+(\S+)\s+([A-Za-z][A-Za-z0-9_]*)/.exec(l);
    if (cmd) found = { family: cmd[1], table: cmd[2], set: cmd[3]! };
    const blk = /^\s*(?:set|map)\s+([A-Za-z][A-Za-z0-9_]*)\s*\{/.exec(l);
    if (!found && blk) found = { set: blk[1]! };
  }
  if (found === undefined) return undefined;
  const decl = new RegExp(
    `(?:(?:add|create)\\s+(?:set|map)\\s+\\S+\\s+\\S+\\s+${found.set}|(?:^|\\n)\\s*(?:set|map)\\s+${found.set})\\s*\\{[^}]*?\\bsize\\s+(\\d+)`,
  ).exec(source);
  return decl ? { ...found, size: Number(decl[1]) } : found;
}
