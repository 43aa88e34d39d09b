// Live log streams (SSE) against a real `palisade server` on a private redis-server (killed
// by pid here; the shared Redis is never touched): all streams of a server share one Redis
// subscriber (counted with CLIENT LIST), a token may hold SSE_STREAMS_PER_TOKEN of them,
// revoking a token ends its streams, and losing Redis ends every stream cleanly and
// refuses new ones with 503 until it is back.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { waitFor } from "../support/grpc-fleet.ts";
import { startTestRedis, type TestRedis } from "../support/redis-server.ts";
import { spawnServer, type ServerProcess } from "../support/server-process.ts";

const CAP = 25;
let redis: TestRedis;
let s: ServerProcess;
let base: string;
let admin: string;
const tokens: Record<string, { id: string; token: string }> = {};

interface Stream {
  status: number;
  body: string;
  text(): string;
  /** Resolves when the server ended the stream. */
  ended: Promise<void>;
  close(): void;
}

async function openStream(token: string): Promise<Stream> {
  const ctl = new AbortController();
  const res = await fetch(`${base}/v1/logs/stream?heartbeat=60`, {
    headers: { authorization: `Bearer ${token}` },
    signal: ctl.signal,
  });
  if (res.status !== 200)
    return { status: res.status, body: await res.text(), text: () => "", ended: Promise.resolve(), close() {} };
  let text = "";
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  const ended = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        text += dec.decode(value, { stream: true });
      }
    } catch {
      // aborted by close()
    }
  })();
  await waitFor(() => text.includes(": stream open"), 10_000, "stream open");
  return { status: 200, body: "", text: () => text, ended, close: () => ctl.abort() };
}

async function publishEvent(id: number): Promise<void> {
  const r = new Redis(redis.port, "127.0.0.1", { maxRetriesPerRequest: 1 });
  try {
    const e = {
      id: String(id),
      at: new Date().toISOString(),
      hostId: "00000000-0000-4000-8000-000000000001",
      host: "edge-1",
      prefix: "drop",
      level: 4,
      mark: null,
      ctmark: null,
      fields: {},
    };
    await r.publish("palisade:logs", JSON.stringify(e));
  } finally {
    r.disconnect();
  }
}

const serverClients = async () => (await redis.clients()).filter((c) => c.cmd !== "client|list").length;

before(async () => {
  redis = await startTestRedis();
  s = await spawnServer({ REDIS_URL: redis.url, SSE_STREAMS_PER_TOKEN: String(CAP) });
  await s.line((l) => l.msg === "server started");
  base = `http://127.0.0.1:${s.port}`;
  admin = s.adminToken();
  for (const name of ["viewer-a", "viewer-b"]) {
    const res = await fetch(`${base}/v1/tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ name, role: "viewer" }),
    });
    assert.equal(res.status, 201);
    tokens[name] = (await res.json()) as { id: string; token: string };
  }
});
after(async () => {
  await s?.stop();
  await redis?.stop();
});

describe("live log streams", () => {
  const a: Stream[] = [];
  let b: Stream;

  test(`${CAP} streams share one Redis connection, and each gets every event`, async (t) => {
    const idle = await serverClients();
    // The first streams arrive together, while the shared subscription is still being made.
    a.push(...(await Promise.all(Array.from({ length: 4 }, () => openStream(tokens["viewer-a"]!.token)))));
    assert.deepEqual(
      a.map((x) => x.status),
      [200, 200, 200, 200],
    );
    const one = await serverClients();
    while (a.length < CAP) a.push(await openStream(tokens["viewer-a"]!.token));
    b = await openStream(tokens["viewer-b"]!.token);
    const many = await serverClients();
    t.diagnostic(`Redis clients of the server: ${idle} idle, ${one} with 4 streams, ${many} with ${CAP + 1} streams`);
    assert.ok(one - idle <= 1, `the first streams add at most the shared subscriber (${idle} -> ${one})`);
    assert.equal(many, one, "further streams add no Redis connection");
    await publishEvent(1);
    await waitFor(
      () => [...a, b].every((x) => x.text().includes("id: 1\nevent: log\n")),
      10_000,
      "every stream to get the event",
    );
  });

  test(`stream ${CAP + 1} of one token is 429 naming SSE_STREAMS_PER_TOKEN; other tokens are not affected; closing one frees a place`, async () => {
    const over = await openStream(tokens["viewer-a"]!.token);
    assert.equal(over.status, 429, over.body);
    const err = JSON.parse(over.body).error;
    assert.equal(err.code, "rate_limited");
    assert.match(err.message, /SSE_STREAMS_PER_TOKEN is 25/);
    const b2 = await openStream(tokens["viewer-b"]!.token);
    assert.equal(b2.status, 200);
    b2.close();
    a.pop()!.close();
    let again: Stream | undefined;
    await waitFor(
      async () => {
        again = await openStream(tokens["viewer-a"]!.token);
        return again.status === 200;
      },
      10_000,
      "a place to free up",
    );
    a.push(again!);
  });

  test("revoking a token ends its open streams with event: end token_revoked; other tokens' streams stay", async () => {
    const res = await fetch(`${base}/v1/tokens/${tokens["viewer-a"]!.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(res.status, 204);
    await Promise.all(a.map((x) => x.ended));
    for (const x of a) assert.match(x.text(), /event: end\ndata: token_revoked\n\n$/);
    await publishEvent(2);
    await waitFor(() => b.text().includes("id: 2\n"), 10_000, "the other token's stream to keep receiving");
  });

  test("Redis goes away: open streams end with event: end redis_unavailable; new ones are 503 until it is back", async () => {
    await redis.kill();
    await b.ended;
    assert.match(b.text(), /event: end\ndata: redis_unavailable\n\n$/);
    const refused = await openStream(tokens["viewer-b"]!.token);
    assert.equal(refused.status, 503, refused.body);
    const err = JSON.parse(refused.body).error;
    assert.equal(err.code, "unavailable");
    assert.match(err.message, /REDIS_URL/);
    await redis.restart();
    let back: Stream | undefined;
    await waitFor(
      async () => {
        back = await openStream(tokens["viewer-b"]!.token);
        return back.status === 200;
      },
      30_000,
      "streams to open again once Redis is back",
    );
    await publishEvent(3);
    await waitFor(() => back!.text().includes("id: 3\n"), 10_000, "events after Redis came back");
    back!.close();
  });
});
