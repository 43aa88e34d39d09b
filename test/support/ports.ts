// Free loopback ports for servers a test starts.
import { createServer, type Server } from "node:net";

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/**
 * `n` distinct free loopback ports, all held open until every one is chosen: ports picked one
 * at a time and released can come back twice (the kernel reuses a just-closed port), and a
 * replica started before the next one's ports are picked has not bound its own yet.
 */
export async function freePorts(n: number): Promise<number[]> {
  const held: Server[] = [];
  try {
    for (let i = 0; i < n; i++)
      held.push(
        await new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
      );
    return held.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
