// What the API publishes on hosts' Redis channels (src/api/host-bus.ts) while a request runs.
import { Redis } from "ioredis";
import { hostChannel } from "../../src/api/host-bus.ts";
import { TEST_REDIS_URL } from "./db.ts";

/** Messages each host's channel receives while `fn` runs, by host name (`ids`: name -> host id). */
export async function published(
  ids: Record<string, string>,
  fn: () => Promise<unknown>,
): Promise<Record<string, unknown[]>> {
  const sub = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  const got: Record<string, unknown[]> = {};
  const byChannel = new Map(Object.entries(ids).map(([n, id]) => [hostChannel(id), n]));
  try {
    await sub.subscribe(...byChannel.keys());
    sub.on("message", (c: string, m: string) => (got[byChannel.get(c)!] ??= []).push(JSON.parse(m)));
    await fn();
    // The API published before answering; give the subscriber's socket a bounded moment.
    for (let i = 0; i < 100 && Object.keys(got).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
  } finally {
    sub.disconnect();
  }
  return got;
}
