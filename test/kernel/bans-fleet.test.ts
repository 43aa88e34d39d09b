// Fleet-wide bans on real kernels: three agents (`palisade agent` inside their own network
// namespaces), one API replica (child process on loopback) reached through socat in a hub
// namespace at 10.214.0.1, and sources to ban on the hub's loopback. Packets are crafted
// with hping3 from those sources towards a closed port of each agent's namespace: an
// answer (RST) means the packet got in, none means it was dropped.
//
// Proves: bad input is refused whole; a ban by label reaches exactly the selected kernels
// and drops the source there; removal lifts it; expiry lifts it in the kernel and the API
// together; an agent that was away converges to the current lists when it reconnects.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { openFleetLab, type FleetAgent, type FleetLab } from "../support/fleet-lab.ts";
import { waitUntil } from "../support/fleet-processes.ts";
import type { RestJson } from "../support/rest-json.ts";

const SRC = ["10.214.50.5", "10.214.50.6", "10.214.50.7", "10.214.50.8"];

let fleet: FleetLab;
let agents: FleetAgent[] = [];
let api: RestJson;

/** True when a SYN from `src` to a closed port of `a` gets its RST back. */
const reaches = (src: string, a: FleetAgent) => fleet.reaches(a, 9, src);

before(async () => {
  fleet = await openFleetLab({
    name: "bans",
    apiAddr: "10.214.0.1",
    sources: SRC,
    agents: [
      { name: "web-0", labels: { role: "web" } },
      { name: "web-1", labels: { role: "web" } },
      { name: "db-0", labels: { role: "db" } },
    ],
  });
  ({ agents, api } = fleet);
});

after(async () => {
  await fleet?.close();
});

test("bad input is refused whole with a clear error and nothing is applied", async () => {
  const r = await api("POST", "/v1/bans", {
    list: "edge",
    addresses: [SRC[0], "0.0.0.0/0", "10.1.2.300", "127.0.0.1", "10.0.0.1/8", "::/0"],
    ttlSeconds: 600,
  });
  assert.equal(r.status, 400, JSON.stringify(r.json));
  const codes = Object.fromEntries(r.json.error.details.map((d: { path: string; code: string }) => [d.path, d.code]));
  assert.deepEqual(codes, {
    "/addresses/1": "whole_internet",
    "/addresses/2": "malformed_address",
    "/addresses/3": "covers_api_address",
    "/addresses/4": "host_bits_set",
    "/addresses/5": "whole_internet",
  });
  assert.equal((await api("GET", "/v1/bans")).json.items.length, 0);
  for (const a of agents) assert.equal((await fleet.kernelBans(a)).size, 0, `${a.name} holds no ban`);
  assert.ok(await reaches(SRC[0]!, agents[0]!), "the source still gets in");
});

test("a ban by label reaches exactly the selected kernels, drops the source there, and removal lifts it", async () => {
  const [web0, web1, db0] = agents as [FleetAgent, FleetAgent, FleetAgent];
  assert.ok(await reaches(SRC[0]!, web0), "before the ban the source gets in");
  const r = await api("POST", "/v1/bans", {
    list: "edge",
    addresses: [SRC[0], "2001:db8::5", "2001:db8:1::/48", "198.51.100.0/24"],
    ttlSeconds: 600,
    reason: "probing",
    selector: { labels: { role: "web" } },
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.hosts, 2);
  for (const a of [web0, web1]) {
    const k = await waitUntil(
      async () => ((await fleet.kernelBans(a)).size === 4 ? fleet.kernelBans(a) : undefined),
      30_000,
      `${a.name} gets the bans`,
    );
    assert.deepEqual([...k.keys()].sort(), ["10.214.50.5", "198.51.100.0/24", "2001:db8:1::/48", "2001:db8::5"]);
    assert.equal(await reaches(SRC[0]!, a), false, `${a.name} drops the banned source`);
    assert.ok(await reaches(SRC[1]!, a), `${a.name} still lets another source in`);
  }
  assert.equal((await fleet.kernelBans(db0)).size, 0, "db-0 is not selected");
  assert.ok(await reaches(SRC[0]!, db0), "db-0 lets the source in");
  const listed = await api("GET", "/v1/bans?list=edge&host=web-1");
  assert.equal(listed.json.items.length, 4);
  assert.equal((await api("GET", "/v1/bans?host=db-0")).json.items.length, 0);

  const del = await api("DELETE", `/v1/bans/edge/${SRC[0]}`);
  assert.equal(del.status, 200, JSON.stringify(del.json));
  for (const a of [web0, web1]) {
    await waitUntil(async () => !(await fleet.kernelBans(a)).has(SRC[0]!), 30_000, `${a.name} lifts the ban`);
    assert.ok(await reaches(SRC[0]!, a), `${a.name} lets the source in again`);
    assert.equal((await fleet.kernelBans(a)).size, 3, "the other bans stay");
  }
  const audit = (await api("GET", "/v1/audit?limit=50")).json.items.map((i: { action: string }) => i.action);
  assert.ok(audit.includes("ban.add") && audit.includes("ban.remove"), audit.join(","));
});

test("an expired ban leaves the kernels and the API together", async () => {
  const ttl = 4;
  const r = await api("POST", "/v1/bans", { list: "short", addresses: [SRC[2]], ttlSeconds: ttl });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const expiresAt = Date.parse(r.json.items[0].expiresAt);
  for (const a of agents) {
    const k = await waitUntil(
      async () => ((await fleet.kernelBans(a)).get(SRC[2]!) !== undefined ? fleet.kernelBans(a) : undefined),
      30_000,
      `${a.name} gets the short ban`,
    );
    // The kernel counts down to the API's expiry (within delivery and listing time, never past it by more).
    const kernelEnd = Date.now() + k.get(SRC[2]!)!;
    assert.ok(
      Math.abs(kernelEnd - expiresAt) < 1500,
      `${a.name}: kernel ends at ${new Date(kernelEnd).toISOString()}, API at ${new Date(expiresAt).toISOString()}`,
    );
    assert.equal(await reaches(SRC[2]!, a), false);
  }
  // Whichever side lets go first, the other follows at once: when the API stops listing
  // it, no kernel has more than a moment left; when the kernels dropped it, the API no
  // longer lists it.
  await waitUntil(
    async () => !(await api("GET", "/v1/bans?list=short")).json.items.length,
    30_000,
    "API drops the expired ban",
  );
  for (const a of agents) {
    const left = (await fleet.kernelBans(a)).get(SRC[2]!);
    assert.ok(left === undefined || left < 1000, `${a.name} still holds the expired ban for ${left} ms`);
  }
  for (const a of agents) {
    await waitUntil(async () => !(await fleet.kernelBans(a)).has(SRC[2]!), 10_000, `${a.name} drops the expired ban`);
    assert.ok(await reaches(SRC[2]!, a), `${a.name} lets the source in after expiry`);
  }
  assert.equal((await api("GET", "/v1/bans?list=short")).json.items.length, 0);
});

test("an agent that was away converges to the current lists when it reconnects", async () => {
  const db0 = agents[2]!;
  const b1 = await api("POST", "/v1/bans", { list: "away", addresses: [SRC[3]], ttlSeconds: 600 });
  assert.equal(b1.status, 201);
  await waitUntil(async () => (await fleet.kernelBans(db0)).has(SRC[3]!), 30_000, "db-0 gets the first ban");
  await db0.proc!.stop();
  await waitUntil(async () => !(await fleet.connected(db0.name)), 30_000, "db-0 disconnected");
  // While it is away: one ban lifted, one added (to every host).
  assert.equal((await api("DELETE", `/v1/bans/away/${SRC[3]}`)).status, 200);
  assert.equal((await api("POST", "/v1/bans", { list: "away", addresses: [SRC[1]], ttlSeconds: 600 })).status, 201);
  assert.ok(
    (await fleet.kernelBans(db0)).has(SRC[3]!),
    "the kernel still holds the lifted ban while the agent is away",
  );
  fleet.startAgent(db0);
  await waitUntil(
    async () => {
      const k = await fleet.kernelBans(db0);
      return k.has(SRC[1]!) && !k.has(SRC[3]!);
    },
    60_000,
    `db-0 converges\n${db0.proc?.output().slice(-2000)}`,
  );
  assert.equal(await reaches(SRC[1]!, db0), false);
  assert.ok(await reaches(SRC[3]!, db0));
});

test("an update the kernel refuses is not lost: the agent reloads the full state and converges", async () => {
  const web0 = agents[0]!;
  const before = await fleet.kernelBans(web0);
  assert.ok(before.has(SRC[1]!), "web-0 holds the away ban");
  // Someone removes the ban table behind the agent's back: its next change (element adds to
  // sets it believes exist) is refused by the kernel.
  await fleet.lab.nft(web0.ns, ["delete", "table", "inet", "palisade_bans"]);
  const r = await api("POST", "/v1/bans", {
    list: "away",
    addresses: ["198.51.100.77"],
    ttlSeconds: 600,
    selector: { hosts: [web0.name] },
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  await waitUntil(
    async () => web0.proc!.output().includes("ban update not applied"),
    30_000,
    `web-0 fails the change\n${web0.proc?.output().slice(-2000)}`,
  );
  await waitUntil(
    async () => {
      const k = await fleet.kernelBans(web0);
      return [...before.keys(), "198.51.100.77"].every((a) => k.has(a));
    },
    60_000,
    `web-0 converges after the failure\n${web0.proc?.output().slice(-2000)}`,
  );
  assert.equal(await reaches(SRC[1]!, web0), false, "the banned source is dropped again");
  await waitUntil(async () => fleet.connected(web0.name), 30_000, "web-0 is connected again");
});
