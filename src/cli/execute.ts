// `palisade import --execute`: run a firewall script in a throwaway sandbox and record what it
// asks of iptables, ip6tables, iptables-restore, ipset, modprobe and sysctl. The shell does the
// control flow the line importer cannot follow; the engine (importRecorded) imports the record.
// Sandbox: new network, mount, PID, UTS and IPC namespaces (unshare); every host mount
// remounted read-only, fresh tmpfs on /tmp, /var/tmp, /run and /dev/shm, a private /dev with
// only null/zero/full/random/urandom/tty; the programs above replaced by a recorder, on PATH
// and bind-mounted over their usual paths. The setup runs as root; the script itself runs as
// nobody with no capability at all and no_new_privs (setpriv), so it cannot undo the mounts,
// load modules, write devices or sysctls. A time limit (the whole process group is killed)
// and bounded output. Runs on the operator's machine only: the API never executes scripts.
import { spawn } from "node:child_process";
import { constants, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RecordedCommand } from "../engine/index.ts";

export interface ExecuteOptions {
  /** Positional parameters of the script ($1 ...), e.g. ["start"] for an init script. */
  args?: string[];
  /** Wall-clock limit; the sandbox is killed when it passes. */
  timeoutMs?: number;
  /** How much of the script's own stdout+stderr is kept. */
  maxOutputBytes?: number;
}

export interface ExecuteResult {
  commands: RecordedCommand[];
  /** The script's exit status (null when it was killed). */
  exitCode: number | null;
  timedOut: boolean;
  /** The script's stdout and stderr, interleaved, cut at maxOutputBytes. */
  output: string;
  outputTruncated: boolean;
}

/** Where the work directory's box/ appears inside the sandbox (its rec/ is the only writable host directory). */
const BOX = "/mnt";
const LOG_LIMIT_KB = 16 * 1024;
/** The script's user and group: nobody. Only rec/ belongs to it; nothing else it can reach is writable. */
const SCRIPT_ID = 65534;
/** The only input file names the recorder makes (mktemp in.XXXXXX); anything else in the log is forged. */
const INPUT_PATH = new RegExp(`^${BOX}/rec/(in\\.[A-Za-z0-9]{6})$`);

/** A sandbox that cannot be built, or a record the recorder cannot have written; code is stable. */
export class SandboxError extends Error {
  override name = "SandboxError";
  constructor(
    readonly code: "execute_needs_root" | "execute_bad_record",
    message: string,
  ) {
    super(message);
  }
}

/** The recorder: one NUL-separated record per call; prints nothing, `-C` answers "no such rule". */
const RECORDER = `#!/bin/sh
prog=\${0##*/}
case "$prog" in
  iptables|iptables-legacy|iptables-nft) prog=iptables ;;
  ip6tables|ip6tables-legacy|ip6tables-nft) prog=ip6tables ;;
  iptables-restore|iptables-legacy-restore|iptables-nft-restore) prog=iptables-restore ;;
  ip6tables-restore|ip6tables-legacy-restore|ip6tables-nft-restore) prog=ip6tables-restore ;;
  ipset|modprobe|sysctl) ;;
  *) exit 0 ;;
esac
input=-
case "$prog:$1" in
  *-restore:*|ipset:restore|ipset:-R) input=$(mktemp ${BOX}/rec/in.XXXXXX) && cat > "$input" ;;
esac
printf 'REC\\0%s\\0%s\\0%s\\0' "\${PALISADE_LINE:-0}" "$prog" "$#" >> ${BOX}/rec/log
for a in "$@"; do printf '%s\\0' "$a" >> ${BOX}/rec/log; done
printf '%s\\0' "$input" >> ${BOX}/rec/log
case "$prog" in
  iptables|ip6tables)
    for a in "$@"; do case "$a" in -C|--check) exit 1 ;; -V|--version) echo "$prog v1.8.9 (recorded by palisade)" ;; esac; done ;;
esac
exit 0
`;

/** BASH_ENV: every command of the script exports its line, so the recorder can say where it was called. */
const LINE_TRACKER = `set -T
trap 'if [ "\${BASH_SOURCE[0]-}" = ${BOX}/script.sh ]; then export PALISADE_LINE=$LINENO; fi' DEBUG
`;

const RECORDED = ["iptables", "ip6tables", "iptables-restore", "ip6tables-restore", "ipset", "modprobe", "sysctl"];
const VARIANTS = [
  "iptables-legacy",
  "iptables-nft",
  "ip6tables-legacy",
  "ip6tables-nft",
  "iptables-legacy-restore",
  "iptables-nft-restore",
  "ip6tables-legacy-restore",
  "ip6tables-nft-restore",
];

/** Runs as the sandbox's first process (PID 1 of its PID namespace), as root in new namespaces. */
const SETUP = `set -eu
mount --make-rprivate /
mount --bind "$1" ${BOX}
shift
# Every host mount read-only: a write outside the tmpfs below fails instead of landing on the host.
awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
  case "$mp" in ${BOX}|${BOX}/*) continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
if touch /etc/.palisade-sandbox-probe 2>/dev/null; then
  rm -f /etc/.palisade-sandbox-probe; echo "palisade: the sandbox could not make the filesystem read-only" >&2; exit 97
fi
mount --bind ${BOX}/bin ${BOX}/bin && mount -o remount,bind,ro ${BOX}/bin
# A private /dev: the host's devtmpfs holds its disks and /dev/mem.
mount -t tmpfs -o size=1m,mode=755,nosuid,noexec palisade-dev /dev
mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 && mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8 && mknod -m 666 /dev/urandom c 1 9 && mknod -m 666 /dev/tty c 5 0
ln -s /proc/self/fd /dev/fd && ln -s fd/0 /dev/stdin && ln -s fd/1 /dev/stdout && ln -s fd/2 /dev/stderr
mkdir /dev/shm /dev/pts
mount -o remount,ro,nosuid,noexec /dev
for d in /tmp /var/tmp /run /dev/shm; do [ -d "$d" ] && mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev palisade-sandbox "$d"; done
for p in ${[...RECORDED, ...VARIANTS].join(" ")}; do
  for d in /usr/sbin /usr/bin /sbin /bin /usr/local/sbin /usr/local/bin; do
    if [ -e "$d/$p" ]; then mount --bind ${BOX}/bin/recorder "$d/$p" && mount -o remount,bind,ro "$d/$p"; fi
  done
done
ip link set lo up 2>/dev/null || true
ulimit -f ${LOG_LIMIT_KB}
cd /tmp
# From here on no privilege: nobody, no capability (effective, bounding, inheritable, ambient), no setuid gain.
exec setpriv --reuid=${SCRIPT_ID} --regid=${SCRIPT_ID} --clear-groups --inh-caps=-all --ambient-caps=-all \\
  --bounding-set=-all --no-new-privs \\
  env -i PATH=${BOX}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TERM=dumb \\
  BASH_ENV=${BOX}/bin/line-tracker.sh bash ${BOX}/script.sh "$@"
`;

export async function executeScript(script: string, opts: ExecuteOptions = {}): Promise<ExecuteResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const maxOutput = opts.maxOutputBytes ?? 64 * 1024;
  if (!hasSysAdmin()) {
    throw new SandboxError(
      "execute_needs_root",
      "import --execute needs root (CAP_SYS_ADMIN) to build its sandbox: run it with sudo",
    );
  }
  // work/ stays root-only on the host; box/ (mounted on /mnt) is what the script sees.
  const work = await mkdtemp(join(tmpdir(), "palisade-execute-"));
  const box = join(work, "box");
  const rec = join(box, "rec");
  try {
    await chmod(work, 0o700);
    await mkdir(join(box, "bin"), { recursive: true, mode: 0o755 });
    await chmod(box, 0o755);
    await mkdir(rec, { mode: 0o700 });
    await writeFile(join(rec, "log"), "", { mode: 0o600 });
    await chown(rec, SCRIPT_ID, SCRIPT_ID);
    await chown(join(rec, "log"), SCRIPT_ID, SCRIPT_ID);
    await writeFile(join(box, "script.sh"), script, { mode: 0o755 });
    await writeFile(join(box, "bin", "recorder"), RECORDER, { mode: 0o755 });
    await writeFile(join(box, "bin", "line-tracker.sh"), LINE_TRACKER, { mode: 0o644 });
    await writeFile(join(box, "bin", "setup.sh"), SETUP, { mode: 0o644 });
    // On PATH too, for names that are not installed on this machine (bind mounts need a file to cover).
    for (const p of [...RECORDED, ...VARIANTS]) {
      await writeFile(join(box, "bin", p), RECORDER, { mode: 0o755 });
    }
    const run = await runSandbox(box, opts.args ?? [], timeoutMs, maxOutput);
    // rec/ belonged to the script: any file in it may be a symlink, a FIFO, a hard link or a forgery.
    const commands = await parseLog(await readOwnFile(join(rec, "log")), async (f) => {
      const name = INPUT_PATH.exec(f)?.[1];
      if (!name)
        throw new SandboxError(
          "execute_bad_record",
          `the record names an input file the recorder cannot have made: ${f}`,
        );
      return (await readOwnFile(join(rec, name))).toString("utf8");
    });
    return { ...run, commands };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** CAP_SYS_ADMIN (bit 21) in the effective set: what unshare and the mounts need. */
function hasSysAdmin(): boolean {
  try {
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    return eff !== undefined && (BigInt(`0x${eff}`) & (1n << 21n)) !== 0n;
  } catch {
    return process.getuid?.() === 0;
  }
}

/**
 * A regular file the script wrote in rec/ (a directory the CLI made, so only the last name is
 * the script's): not followed if a symlink (O_NOFOLLOW), no wait on a FIFO (O_NONBLOCK), refused
 * with more than one link (a hard link to a file elsewhere).
 */
async function readOwnFile(path: string): Promise<Buffer> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new SandboxError("execute_bad_record", `${path} is a symlink`);
    // The script removed it.
    if (code === "ENOENT") throw new SandboxError("execute_bad_record", `${path} is missing`);
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.nlink !== 1)
      throw new SandboxError("execute_bad_record", `${path} is not a regular file of the sandbox`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

function runSandbox(box: string, args: string[], timeoutMs: number, maxOutput: number) {
  return new Promise<Omit<ExecuteResult, "commands">>((resolve, reject) => {
    const child = spawn(
      "unshare",
      [
        "--net",
        "--mount",
        "--pid",
        "--uts",
        "--ipc",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "sh",
        join(box, "bin", "setup.sh"),
        box,
        ...args,
      ],
      { detached: true, stdio: ["ignore", "pipe", "pipe"] },
    );
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    const keep = (b: Buffer) => {
      if (kept >= maxOutput) return void (truncated = true);
      const part = b.subarray(0, maxOutput - kept);
      if (part.length < b.length) truncated = true;
      chunks.push(part);
      kept += part.length;
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // The process group: unshare, and through --kill-child the namespace's init and everything in it.
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({
        exitCode: timedOut ? null : code,
        timedOut,
        output: Buffer.concat(chunks).toString("utf8"),
        outputTruncated: truncated,
      });
    });
  });
}

/** The recorder's log: `REC line program argc args... input` records, NUL-separated. */
export async function parseLog(buf: Buffer, readInput: (path: string) => Promise<string>): Promise<RecordedCommand[]> {
  const f = buf.toString("utf8").split("\0");
  const out: RecordedCommand[] = [];
  let i = 0;
  let lastLine = 1;
  while (i < f.length && f[i] === "REC") {
    const line = Number(f[i + 1]);
    const program = f[i + 2]!;
    const argc = Number(f[i + 3]);
    if (!Number.isInteger(argc) || argc < 0 || i + 4 + argc >= f.length) break;
    const args = f.slice(i + 4, i + 4 + argc);
    const inputPath = f[i + 4 + argc]!;
    i += 5 + argc;
    // Commands from a sourced file or a subshell without the line tracker count as the last known line.
    if (Number.isInteger(line) && line >= 1) lastLine = line;
    const parsed = RecordedCommand.safeParse({ line: lastLine, program, args });
    if (!parsed.success) continue;
    if (inputPath !== "-") parsed.data.input = await readInput(inputPath);
    out.push(parsed.data);
  }
  return out;
}
