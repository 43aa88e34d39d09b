// `palisade import --execute`: run a firewall script in a throwaway sandbox and record what it
// asks of iptables, ip6tables, iptables-restore, ipset, modprobe and sysctl. The shell does the
// control flow the line importer cannot follow; the engine (importRecorded) imports the record.
// Sandbox: new network, mount, PID, UTS and IPC namespaces (unshare); every host mount
// remounted read-only, fresh tmpfs on /tmp, /var/tmp, /run and /dev/shm; the programs above
// replaced by a recorder, on PATH and bind-mounted over their usual paths; a time limit (the
// whole process group is killed) and bounded output. Runs on the operator's machine only:
// the API never executes scripts.
import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
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

/** Where the work directory appears inside the sandbox (the only writable host directory). */
const BOX = "/mnt";
const LOG_LIMIT_KB = 16 * 1024;

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
  "iptables-legacy", "iptables-nft", "ip6tables-legacy", "ip6tables-nft", "iptables-legacy-restore",
  "iptables-nft-restore", "ip6tables-legacy-restore", "ip6tables-nft-restore",
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
for d in /tmp /var/tmp /run /dev/shm; do [ -d "$d" ] && mount -t tmpfs -o size=64m,mode=1777 palisade-sandbox "$d"; done
for p in ${[...RECORDED, ...VARIANTS].join(" ")}; do
  for d in /usr/sbin /usr/bin /sbin /bin /usr/local/sbin /usr/local/bin; do
    if [ -e "$d/$p" ]; then mount --bind ${BOX}/bin/recorder "$d/$p" && mount -o remount,bind,ro "$d/$p"; fi
  done
done
ip link set lo up 2>/dev/null || true
ulimit -f ${LOG_LIMIT_KB}
cd /tmp
exec env -i PATH=${BOX}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TERM=dumb \\
  BASH_ENV=${BOX}/bin/line-tracker.sh bash ${BOX}/script.sh "$@"
`;

export async function executeScript(script: string, opts: ExecuteOptions = {}): Promise<ExecuteResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const maxOutput = opts.maxOutputBytes ?? 64 * 1024;
  const work = await mkdtemp(join(tmpdir(), "palisade-execute-"));
  try {
    await mkdir(join(work, "bin"));
    await mkdir(join(work, "rec"));
    await writeFile(join(work, "rec", "log"), "");
    await writeFile(join(work, "script.sh"), script, { mode: 0o755 });
    await writeFile(join(work, "bin", "recorder"), RECORDER, { mode: 0o755 });
    await writeFile(join(work, "bin", "line-tracker.sh"), LINE_TRACKER);
    await writeFile(join(work, "bin", "setup.sh"), SETUP);
    // On PATH too, for names that are not installed on this machine (bind mounts need a file to cover).
    for (const p of [...RECORDED, ...VARIANTS]) {
      await writeFile(join(work, "bin", p), RECORDER, { mode: 0o755 });
    }
    await chmod(work, 0o700);
    const run = await runSandbox(work, opts.args ?? [], timeoutMs, maxOutput);
    const commands = parseLog(await readFile(join(work, "rec", "log")), async (f) => readFile(f.replace(BOX, work), "utf8"));
    return { ...run, commands: await commands };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function runSandbox(work: string, args: string[], timeoutMs: number, maxOutput: number) {
  return new Promise<Omit<ExecuteResult, "commands">>((resolve, reject) => {
    const child = spawn(
      "unshare",
      ["--net", "--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child", "--mount-proc", "sh", join(work, "bin", "setup.sh"), work, ...args],
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
      resolve({ exitCode: timedOut ? null : code, timedOut, output: Buffer.concat(chunks).toString("utf8"), outputTruncated: truncated });
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
    if (inputPath !== "-" && inputPath.startsWith(`${BOX}/rec/`)) parsed.data.input = await readInput(inputPath);
    out.push(parsed.data);
  }
  return out;
}
