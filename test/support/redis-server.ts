// A private redis-server for tests that stop and start Redis (the shared one on 6379 serves
// every other test and must never be stopped). Empty, no persistence; `kill()` ends only
// the process this started, by pid; `restart()` starts a new empty one on the same port.
import { spawn, type ChildProcess } from "node:child_process";
import { Redis } from "ioredis";
import { freePort } from "./ports.ts";

export interface TestRedis {
  url: string;
  port: number;
  pid(): number;
  /** SIGKILL the server and wait for its exit. */
  kill(): Promise<void>;
  /** A new, empty server on the same port. */
  restart(): Promise<void>;
  /** CLIENT LIST of the running server, one record per connection. */
  clients(): Promise<Record<string, string>[]>;
  stop(): Promise<void>;
}

/** CLIENT LIST's text, one record (field -> value) per connection. */
export function parseClientList(text: string): Record<string, string>[] {
  return text
    .trim()
    .split("\n")
    .map((line) =>
      Object.fromEntries(line.split(" ").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])),
    );
}

function launch(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "notice",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    const onData = (d: Buffer) => {
      out += d;
      if (out.includes("Ready to accept connections")) {
        child.stdout!.off("data", onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) =>
      reject(new Error(`redis-server on ${port} exited (${code}) before it was ready: ${out}`)),
    );
  });
}

export async function startTestRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined = await launch(port);
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => child?.pid ?? -1,
    kill,
    async restart() {
      await kill();
      child = await launch(port);
    },
    async clients() {
      const r = new Redis(port, "127.0.0.1", { maxRetriesPerRequest: 1, lazyConnect: true });
      try {
        await r.connect();
        return parseClientList((await r.client("LIST")) as string);
      } finally {
        r.disconnect();
      }
    },
    stop: kill,
  };
}
