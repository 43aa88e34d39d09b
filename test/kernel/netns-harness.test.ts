// The lab itself: namespaces are unique and always deleted, even when the test body
// throws; commands and background processes are bounded; no veth appears in the root
// namespace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createLab, run, withLab } from "../support/netns.ts";

async function netnsList(): Promise<string> {
  return (await run(["ip", "netns", "list"])).stdout;
}

test("withLab deletes its namespaces when the body throws", async () => {
  let names: string[] = [];
  await assert.rejects(
    withLab(async (lab) => {
      await lab.pair();
      names = [...lab.namespaces];
      assert.equal(names.length, 2);
      assert.notEqual(names[0], names[1]);
      const listed = await netnsList();
      for (const n of names) assert.match(listed, new RegExp(`^${n}\\b`, "m"));
      throw new Error("boom");
    }),
    /boom/,
  );
  const listed = await netnsList();
  for (const n of names) assert.doesNotMatch(listed, new RegExp(`^${n}\\b`, "m"));
});

test("links live only inside the lab's namespaces and carry traffic both ways", async () => {
  const rootLinks = (await run(["ip", "-o", "link", "show"])).stdout;
  await withLab(async (lab) => {
    const { client, server, link } = await lab.pair();
    assert.deepEqual(await lab.ping(client, link.b.ip4, { count: 2 }), { sent: 2, received: 2 });
    assert.deepEqual(await lab.ping(server, link.a.ip6, { count: 2 }), { sent: 2, received: 2 });
    assert.equal((await run(["ip", "-o", "link", "show"])).stdout, rootLinks, "root namespace links unchanged");
    assert.equal(await lab.tcpConnect(client, link.b.ip4, 9), false, "nothing listens: refused");
    const srv = lab.background(server, ["nc", "-lk", "7777"], { maxLifetimeMs: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await lab.tcpConnect(client, link.b.ip4, 7777), true);
    await srv.stop();
  });
});

test("a routed lab forwards through the router namespace", async () => {
  await withLab(async (lab) => {
    const { client, server, right } = await lab.routed();
    assert.deepEqual(await lab.ping(client, right.b.ip4, { count: 2 }), { sent: 2, received: 2 });
    assert.deepEqual(await lab.ping(client, right.b.ip6, { count: 2 }), { sent: 2, received: 2 });
    assert.equal((await lab.ping(server, "198.51.100.1", { count: 1, waitS: 0.3 })).received, 0);
  });
});

test("commands are killed at their timeout", async () => {
  const lab = createLab();
  try {
    const ns = await lab.addNamespace();
    const t0 = Date.now();
    const r = await lab.exec(ns, ["sleep", "30"], { timeoutMs: 300, allowFailure: true });
    assert.equal(r.timedOut, true);
    assert.ok(Date.now() - t0 < 5000);
    await assert.rejects(lab.exec(ns, ["sleep", "30"], { timeoutMs: 200 }), /timed out/);
    assert.throws(() => lab.exec("not-mine", ["true"]), /does not belong/);
  } finally {
    await lab.cleanup();
  }
});
