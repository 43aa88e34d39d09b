// The live log feed's revocation backstop: a token revoked without the notice reaching this
// replica (Redis down at the time, or the notice lost) still has its streams ended by the
// sweep of the open streams' tokens in PostgreSQL. (The notice path: sse-streams.test.ts.)
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { silentLog } from "../../src/api/grpc/index.ts";
import { LogFeed, type EndReason } from "../../src/api/telemetry/log-feed.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { waitFor } from "../support/grpc-fleet.ts";

let t: TestApp;
let feed: LogFeed;
before(async () => {
  t = await startTestApp();
  feed = new LogFeed(t.redis, t.db, silentLog, { perToken: 2, sweepMs: 100 });
});
after(async () => {
  await feed?.close();
  await t?.close();
});

test("a token revoked behind the feed's back loses its streams at the next sweep; others keep theirs", async () => {
  const viewer = await t.db.apiToken.findFirstOrThrow({ where: { name: "test-viewer" } });
  const operator = await t.db.apiToken.findFirstOrThrow({ where: { name: "test-operator" } });
  const ends: [string, EndReason][] = [];
  const stream = (tokenId: string) => ({
    tokenId,
    onEvent() {},
    onEnd: (r: EndReason) => void ends.push([tokenId, r]),
  });
  await feed.open(stream(viewer.id));
  await feed.open(stream(viewer.id));
  await assert.rejects(feed.open(stream(viewer.id)), /SSE_STREAMS_PER_TOKEN is 2/);
  await feed.open(stream(operator.id));
  assert.equal(feed.size, 3);
  // Straight in the database: no notice is published.
  await t.db.apiToken.update({ where: { id: viewer.id }, data: { revokedAt: new Date() } });
  await waitFor(() => ends.length === 2, 10_000, "the sweep to end the revoked token's streams");
  assert.deepEqual(ends, [
    [viewer.id, "token_revoked"],
    [viewer.id, "token_revoked"],
  ]);
  assert.equal(feed.size, 1);
});
