// `palisade server` as a real child process over a throwaway database: its JSON log lines
// as they arrive, a way to wait for one, and its exit status. Call `drop()` when done.
// The agent channel is mutual TLS like the product's default (a secret key, an enrollment
// port and server names for 127.0.0.1 are set); `PALISADE_GRPC_PLAINTEXT: "1"` in `env`
// only for tests about the plaintext lab mode.
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { randomBytes } from "node:crypto";
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from "./db.ts";
import { SimAgent } from "./grpc-fleet.ts";
import { freePorts } from "./ports.ts";

export type LogLine = Record<string, unknown>;

export interface ServerProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  database: TestDatabase;
  port: number;
  grpcPort: number;
  /** The enrollment listener (mutual TLS; 0 in plaintext mode). */
  enrollPort: number;
  /** The agent channel runs without TLS (PALISADE_GRPC_PLAINTEXT=1 was asked for). */
  plaintext: boolean;
  /** Enroll a simulated agent the way this server's channel wants (pinned CA and CSR, or bearer). */
  enrollAgent(token: string, name: string): Promise<SimAgent>;
  lines: LogLine[];
  /** Where the server writes a generated first admin token (PALISADE_INITIAL_TOKEN_FILE, in a private temp dir). */
  tokenFile: string;
  /** The generated first admin token, read from tokenFile. */
  adminToken(): string;
  stderr(): string;
  /** Resolves with the first log line matching `pred` (seen before or later); rejects if the process exits first. */
  line(pred: (l: LogLine) => boolean): Promise<LogLine>;
  /** Exit status and signal, once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (if still running), wait for the exit (SIGKILL and throw after 60 s), drop the database. */
  stop(): Promise<void>;
}

const tail = (lines: LogLine[]) =>
  lines
    .slice(-5)
    .map((l) => JSON.stringify(l))
    .join("\n");

export const isListening = (l: LogLine) => String(l.msg).startsWith("Server listening");

export async function spawnServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  const database = await createTestDatabase({ migrated: false });
  const [port, grpcPort, enrollFree] = (await freePorts(3)) as [number, number, number];
  const dir = mkdtempSync(join(tmpdir(), "palisade-server-"));
  const tokenFile = join(dir, "initial-admin-token");
  const plaintext = env.PALISADE_GRPC_PLAINTEXT === "1";
  const enrollPort = plaintext ? 0 : Number(env.GRPC_ENROLL_PORT ?? enrollFree);
  const child = spawn(new URL("../../bin/palisade", import.meta.url).pathname, ["server"], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      REDIS_URL: TEST_REDIS_URL,
      HOST: "127.0.0.1",
      PORT: String(port),
      GRPC_PORT: String(grpcPort),
      PALISADE_ADMIN_TOKEN: "",
      PALISADE_GRPC_PLAINTEXT: "",
      PALISADE_SECRET_KEY_FILE: "",
      PALISADE_SECRET_KEY: randomBytes(32).toString("base64"),
      ...(enrollPort && { GRPC_ENROLL_PORT: String(enrollPort) }),
      PALISADE_TLS_SERVER_NAMES: "127.0.0.1,localhost",
      PALISADE_INITIAL_TOKEN_FILE: tokenFile,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: LogLine[] = [];
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal })),
  );
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = JSON.parse(buf.slice(0, i)) as LogLine;
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of waiters.filter((w) => w.pred(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  let running = true;
  void exited.then(() => (running = false));
  return {
    child,
    database,
    port,
    grpcPort,
    enrollPort,
    plaintext,
    enrollAgent: (token, name) =>
      plaintext
        ? SimAgent.enroll(`127.0.0.1:${grpcPort}`, token, name)
        : SimAgent.enrollPinned(`127.0.0.1:${enrollPort}`, `127.0.0.1:${grpcPort}`, token, name),
    lines,
    tokenFile,
    adminToken: () => readFileSync(tokenFile, "utf8").trim(),
    stderr: () => stderr,
    exited,
    line(pred) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ pred, resolve });
        void exited.then(({ code, signal }) =>
          reject(new Error(`server exited (${code ?? signal}) before the awaited line: ${stderr}`)),
        );
      });
    },
    async stop() {
      if (running) child.kill("SIGTERM");
      // The server bounds its own shutdown (10 s per service): past that, it hangs. Kill it
      // and fail the caller rather than keep the test process (and the suite) alive forever.
      let timer: NodeJS.Timeout | undefined;
      const hung = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(resolve, 60_000, true))),
      ]);
      clearTimeout(timer);
      if (hung) child.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
      await database.drop();
      if (hung)
        throw new Error(`palisade server did not exit within 60 s of SIGTERM; killed. Last lines: ${tail(lines)}`);
    },
  };
}
