// Deployments end to end over REST, the agent gRPC server and the rollout worker, with
// simulated agents: selection, batch order, halting, offline hosts, rollback, lockout
// reports, retries and delivery across replicas.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorOf } from "../support/app.ts";
import { poolOf } from "../../src/api/db/client.ts";
import { validPolicy } from "../support/policies.ts";
import { startFleet, waitFor, type Fleet, type SimAgent } from "../support/grpc-fleet.ts";

let f: Fleet;
before(async () => {
  f = await startFleet({ replicas: 2 });
  await f.startWorker();
  await f.t.req("POST", "/v1/rulesets", { body: { name: "web" } });
  for (const port of [80, 443, 8443]) {
    const r = await f.t.req("POST", "/v1/rulesets/web/versions", { body: { policy: validPolicy(port) } });
    assert.equal(r.statusCode, 201, r.body);
  }
});
after(async () => {
  await f?.close();
});

interface Detail {
  id: string;
  status: string;
  counts: Record<string, number>;
  targets: {
    host: string;
    batch: number;
    status: string;
    error: string | null;
    attempts: number;
    version: { version: number };
    finishedAt: string | null;
  }[];
}

async function deploy(body: Record<string, unknown>): Promise<string> {
  const res = await f.t.req("POST", "/v1/deployments", {
    as: "operator",
    body: { ruleset: "web", version: 1, ...body },
  });
  assert.equal(res.statusCode, 202, res.body);
  return (res.json() as { id: string }).id;
}
const detail = async (id: string) => (await f.t.req("GET", `/v1/deployments/${id}`, { as: "viewer" })).json() as Detail;
async function until(id: string, statuses: string[], timeoutMs = 30_000): Promise<Detail> {
  let d: Detail | undefined;
  await waitFor(
    async () => statuses.includes((d = await detail(id)).status),
    timeoutMs,
    `deployment ${id} to be ${statuses.join("/")}`,
    100,
  );
  return d!;
}
async function agents(prefix: string, n: number, labels: Record<string, string>): Promise<SimAgent[]> {
  const out: SimAgent[] = [];
  for (let i = 0; i < n; i++) out.push(await f.agent(`${prefix}-${i}`, labels, { replica: i % 2 }));
  return out;
}

describe("selection", () => {
  test("a deployment by labels reaches exactly the hosts carrying all of them", async () => {
    const web = await agents("sel-web", 2, { env: "prod", role: "web", grp: "sel" });
    const db = await f.agent("sel-db", { env: "prod", role: "db", grp: "sel" });
    const dev = await f.agent("sel-dev", { env: "dev", role: "web", grp: "sel" });
    const id = await deploy({
      selector: { labels: { grp: "sel", env: "prod", role: "web" } },
      strategy: { canary: 0, batchSize: 10 },
    });
    const d = await until(id, ["succeeded"]);
    assert.deepEqual(d.targets.map((t) => t.host).sort(), ["sel-web-0", "sel-web-1"]);
    assert.deepEqual(d.counts, { total: 2, pending: 0, applying: 0, applied: 2, failed: 0, rolled_back: 0 });
    for (const a of web) assert.equal(a.desired.length, 1, `${a.name} got exactly one DesiredState`);
    assert.equal(db.desired.length + dev.desired.length, 0, "unselected hosts got nothing");
    for (const a of web) {
      const h = (await f.t.req("GET", `/v1/hosts/${a.name}`)).json();
      assert.deepEqual(h.appliedVersion, { ruleset: "web", version: 1 });
      assert.deepEqual(h.desiredVersion, { ruleset: "web", version: 1 });
      assert.ok(a.confirms.length === 1, "an applied report is confirmed");
    }
    assert.equal((await f.t.db.host.findUniqueOrThrow({ where: { id: db.hostId } })).appliedVersionId, null);
    // hosts + labels: the listed hosts that carry the labels.
    const id2 = await deploy({
      version: 2,
      selector: { hosts: ["sel-web-0", db.hostId], labels: { env: "prod" } },
      strategy: { canary: 0 },
    });
    assert.deepEqual((await until(id2, ["succeeded"])).targets.map((t) => t.host).sort(), ["sel-db", "sel-web-0"]);
  });

  test("bad selectors and unknown versions are refused with the error envelope and write nothing", async () => {
    const before = await f.t.db.deployment.count();
    const cases: [Record<string, unknown>, number, string][] = [
      [{ selector: {} }, 400, "invalid_request"],
      [{ selector: { hosts: ["no-such-host"] } }, 400, "invalid_request"],
      [{ selector: { labels: { grp: "nobody-has-this" } } }, 400, "invalid_request"],
      [{ selector: { hosts: ["sel-dev"], labels: { env: "prod" } } }, 400, "invalid_request"],
      [{ selector: { labels: { grp: "sel" } }, strategy: { batchSize: 0 } }, 400, "invalid_request"],
      [{ version: 99, selector: { labels: { grp: "sel" } } }, 404, "not_found"],
      [{ ruleset: "nope", selector: { labels: { grp: "sel" } } }, 404, "not_found"],
    ];
    for (const [body, status, code] of cases) {
      const res = await f.t.req("POST", "/v1/deployments", {
        as: "operator",
        body: { ruleset: "web", version: 1, ...body },
      });
      assert.equal(res.statusCode, status, `${JSON.stringify(body)}: ${res.body}`);
      assert.equal(errorOf(res).code, code);
    }
    const unknown = await f.t.req("POST", "/v1/deployments", {
      as: "operator",
      body: { ruleset: "web", version: 1, selector: { hosts: ["sel-web-0", "ghost"] } },
    });
    assert.deepEqual(
      errorOf(unknown).details.map((d) => d.path),
      ["/selector/hosts/1"],
    );
    assert.equal(
      (
        await f.t.req("POST", "/v1/deployments", {
          as: "viewer",
          body: { ruleset: "web", version: 1, selector: { hosts: ["sel-web-0"] } },
        })
      ).statusCode,
      403,
    );
    assert.equal(await f.t.db.deployment.count(), before);
  });
});

describe("rollout", () => {
  test("canary first, then batchSize at a time, each batch after the previous one finished", async () => {
    const fleet = await agents("ord", 5, { grp: "ord" });
    for (const a of fleet) a.answer = () => ({ status: "applied", delayMs: 150 });
    const id = await deploy({ selector: { labels: { grp: "ord" } }, strategy: { canary: 1, batchSize: 2 } });
    const d = await until(id, ["succeeded"]);
    assert.deepEqual(
      d.targets.map((t) => t.batch),
      [0, 1, 1, 2, 2],
    );
    const sentAt = new Map(fleet.map((a) => [a.name, a.desired[0]!.at]));
    for (let b = 1; b <= 2; b++) {
      const prevDone = Math.max(...d.targets.filter((t) => t.batch === b - 1).map((t) => Date.parse(t.finishedAt!)));
      const firstSent = Math.min(...d.targets.filter((t) => t.batch === b).map((t) => sentAt.get(t.host)!));
      assert.ok(
        firstSent >= prevDone,
        `batch ${b} started (${firstSent}) before batch ${b - 1} finished (${prevDone})`,
      );
    }
  });

  test("a failing canary halts the rollout: nothing else is sent, the kernel's message is kept", async () => {
    const fleet = await agents("halt", 4, { grp: "halt" });
    const kernelSays = "nft -c refused: Error: syntax error, unexpected string";
    fleet[0]!.answer = () => ({ status: "failed", error: kernelSays });
    fleet[1]!.answer = () => ({ status: "failed", error: kernelSays });
    const id = await deploy({
      selector: { labels: { grp: "halt" } },
      strategy: { canary: 1, batchSize: 2, haltOnFailure: false },
    });
    const d = await until(id, ["halted"]);
    const canary = d.targets.find((t) => t.batch === 0)!;
    assert.equal(canary.status, "failed");
    assert.equal(canary.error, kernelSays);
    assert.deepEqual(
      d.targets.filter((t) => t.batch > 0).map((t) => t.status),
      ["pending", "pending", "pending"],
    );
    assert.equal(
      fleet.reduce((n, a) => n + a.desired.length, 0),
      1,
      "only the canary was sent anything",
    );
  });

  test("haltOnFailure stops after the failing batch; without it the rollout goes on and ends failed", async () => {
    const fleet = await agents("hof", 4, { grp: "hof" });
    fleet[1]!.answer = () => ({ status: "failed", error: "nft: No such file or directory" });
    const halted = await until(
      await deploy({
        selector: { labels: { grp: "hof" } },
        strategy: { canary: 0, batchSize: 2, haltOnFailure: true },
      }),
      ["halted"],
    );
    assert.deepEqual(
      halted.targets.map((t) => [t.batch, t.status]),
      [
        [0, "applied"],
        [0, "failed"],
        [1, "pending"],
        [1, "pending"],
      ],
    );
    assert.equal(fleet[2]!.desired.length + fleet[3]!.desired.length, 0);

    const goOn = await until(
      await deploy({
        version: 2,
        selector: { labels: { grp: "hof" } },
        strategy: { canary: 0, batchSize: 2, haltOnFailure: false },
      }),
      ["failed"],
    );
    assert.deepEqual(
      goOn.targets.map((t) => t.status),
      ["applied", "failed", "applied", "applied"],
    );
    assert.equal(goOn.targets[1]!.error, "nft: No such file or directory");
  });

  test("a host offline during the rollout gets the version when it reconnects", async () => {
    const fleet = await agents("off", 3, { grp: "off" });
    const offline = fleet[2]!;
    offline.close();
    await waitFor(
      async () =>
        (await f.t.db.host.findUniqueOrThrow({ where: { id: offline.hostId } })).connection === "disconnected",
      10_000,
      "offline",
    );
    const id = await deploy({ selector: { labels: { grp: "off" } }, strategy: { canary: 0, batchSize: 10 } });
    await waitFor(async () => (await detail(id)).counts.applied === 2, 20_000, "online hosts applied");
    const mid = await detail(id);
    assert.equal(mid.status, "running", "the deployment waits for the offline host");
    assert.equal(mid.targets.find((t) => t.host === offline.name)!.status, "pending");
    assert.deepEqual((await f.t.req("GET", `/v1/hosts/${offline.name}`)).json().desiredVersion, {
      ruleset: "web",
      version: 1,
    });
    await offline.connect();
    const done = await until(id, ["succeeded"]);
    assert.equal(done.counts.applied, 3);
    assert.equal(offline.desired.length, 1);
  });

  test("rollback puts each host's previous version back", async () => {
    const fleet = await agents("rb", 2, { grp: "rb" });
    const first = await deploy({ selector: { labels: { grp: "rb" } }, strategy: { canary: 0 } });
    await until(first, ["succeeded"]);
    const second = await deploy({ version: 3, selector: { labels: { grp: "rb" } }, strategy: { canary: 0 } });
    await until(second, ["succeeded"]);
    const nothingBefore = await f.t.req("POST", `/v1/deployments/${first}/rollback`, { as: "operator" });
    assert.equal(nothingBefore.statusCode, 409, nothingBefore.body);

    const res = await f.t.req("POST", `/v1/deployments/${second}/rollback`, { as: "operator" });
    assert.equal(res.statusCode, 202, res.body);
    const rb = await until((res.json() as { id: string }).id, ["succeeded"]);
    assert.deepEqual(
      rb.targets.map((t) => t.version.version),
      [1, 1],
    );
    for (const a of fleet) {
      assert.deepEqual(
        a.desired.map((d) => d.version!.version),
        [1, 3, 1],
      );
      assert.deepEqual((await f.t.req("GET", `/v1/hosts/${a.name}`)).json().appliedVersion, {
        ruleset: "web",
        version: 1,
      });
    }
    assert.equal((await detail(second)).status, "rolled_back");
    assert.equal((await f.t.req("POST", `/v1/deployments/${second}/rollback`, { as: "operator" })).statusCode, 409);
  });
});

describe("commit-confirmed and faults", () => {
  test("an agent that loses contact after applying and rolls back by itself ends rolled_back", async () => {
    const [a] = await agents("lock", 1, { grp: "lock" });
    const base = await until(await deploy({ selector: { labels: { grp: "lock" } }, strategy: { canary: 0 } }), [
      "succeeded",
    ]);
    assert.equal(base.status, "succeeded");
    a!.answer = () => ({ status: "none" }); // applied locally; its report never gets out
    const id = await deploy({
      version: 2,
      selector: { labels: { grp: "lock" } },
      strategy: { canary: 0, confirmTimeoutSeconds: 2 },
    });
    await waitFor(() => a!.desired.length === 2, 10_000, "second desired state");
    assert.equal(a!.desired[1]!.confirmTimeoutSeconds, 2);
    // The agent's confirm window passes, it restores v1, reconnects and says so.
    a!.close();
    await a!.connect();
    a!.report(
      a!.desired[1]!,
      "rolled_back",
      "no contact with the API within 2s after applying; previous rules restored",
    );
    const d = await until(id, ["failed"]);
    assert.equal(d.targets[0]!.status, "rolled_back");
    assert.match(d.targets[0]!.error!, /previous rules restored/);
    assert.deepEqual((await f.t.req("GET", `/v1/hosts/${a!.name}`)).json().appliedVersion, {
      ruleset: "web",
      version: 1,
    });
  });

  test("an agent that applied but lost the stream before reporting is confirmed on its hello, and applied once it says so", async () => {
    const [a] = await agents("hello", 1, { grp: "hello" });
    a!.answer = (d) => {
      a!.applied = { ...d.version! }; // kernel holds it, unconfirmed; the APPLYING is lost with the stream
      return { status: "none" };
    };
    const id = await deploy({ version: 2, selector: { labels: { grp: "hello" } }, strategy: { canary: 0 } });
    await waitFor(() => a!.desired.length === 1, 10_000, "desired state");
    a!.close();
    await a!.connect();
    await waitFor(() => a!.confirms.includes(a!.desired[0]!.targetId), 5_000, "confirm on hello");
    // The hello is contact, not the commit: the agent may still die before recording it.
    assert.equal((await until(id, ["running"])).targets[0]!.status, "applying");
    a!.report(a!.desired[0]!, "applied");
    const d = await until(id, ["succeeded"]);
    assert.equal(d.targets[0]!.status, "applied");
  });

  test("the last target's Confirm does not wait on the deployment's settle, and the stream stays", async () => {
    // A 500-agent fan-out's results all saw no open target and queued their settles on the
    // deployment row; those that waited past Prisma's maxWait ended their streams before the
    // Confirm. Here the row is held locked elsewhere while the last result arrives.
    const [a] = await agents("settle", 1, { grp: "settle" });
    a!.answer = () => ({ status: "hold" });
    const id = await deploy({ selector: { labels: { grp: "settle" } }, strategy: { canary: 0 } });
    await waitFor(() => a!.desired.length === 1, 10_000, "desired state");
    const locker = await poolOf(f.t.db).connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM deployments WHERE id = $1::uuid FOR UPDATE", [id]);
      a!.release();
      await waitFor(() => a!.confirms.includes(a!.desired[0]!.targetId), 10_000, "confirm while the row is locked");
      await a!.ping();
    } finally {
      await locker.query("ROLLBACK").catch(() => {});
      locker.release();
    }
    assert.equal((await until(id, ["succeeded"])).targets[0]!.status, "applied");
    await a!.ping();
    assert.equal(a!.endedWith, undefined);
  });

  test("no result in time is retried (bounded), then succeeds", async () => {
    const [a] = await agents("retry", 1, { grp: "retry" });
    let n = 0;
    a!.answer = () => (++n === 1 ? { status: "none" } : { status: "applied" });
    const id = await deploy({
      selector: { labels: { grp: "retry" } },
      strategy: { canary: 0, confirmTimeoutSeconds: 1, retries: 1 },
    });
    const d = await until(id, ["succeeded"], 60_000);
    assert.equal(d.targets[0]!.attempts, 2);
    assert.equal(a!.desired.length, 2);
  });

  test("a late result of the first attempt does not settle the retried target", async () => {
    const [a] = await agents("late", 1, { grp: "late" });
    a!.answer = (d) => {
      if (d.attempt === 1) return { status: "none" };
      // The first send's FAILED arrives only now, on the stream, before the retry's answer.
      a!.report(a!.desired[0]!, "failed", "late: the first attempt's apply failed");
      return { status: "applied" };
    };
    const id = await deploy({
      selector: { labels: { grp: "late" } },
      strategy: { canary: 0, confirmTimeoutSeconds: 1, retries: 1 },
    });
    const d = await until(id, ["succeeded", "failed"], 60_000);
    assert.deepEqual(
      a!.desired.map((x) => x.attempt),
      [1, 2],
      "each send carries its attempt",
    );
    assert.equal(d.status, "succeeded", JSON.stringify(d.targets));
    assert.equal(d.targets[0]!.status, "applied");
  });
});

describe("listing", () => {
  test("GET /v1/deployments pages newest first with per-status counts", async () => {
    const p1 = (await f.t.req("GET", "/v1/deployments?limit=2", { as: "viewer" })).json() as {
      items: Detail[];
      nextCursor: string | null;
    };
    assert.equal(p1.items.length, 2);
    assert.ok(p1.nextCursor);
    const p2 = (await f.t.req("GET", `/v1/deployments?limit=2&cursor=${p1.nextCursor}`, { as: "viewer" })).json() as {
      items: Detail[];
    };
    assert.ok(!p2.items.some((d) => p1.items.some((x) => x.id === d.id)));
    assert.ok(typeof p1.items[0]!.counts.total === "number");
    assert.equal(
      (await f.t.req("GET", "/v1/deployments/00000000-0000-4000-8000-000000000000", { as: "viewer" })).statusCode,
      404,
    );
    assert.equal((await f.t.req("GET", "/v1/deployments/not-a-uuid", { as: "viewer" })).statusCode, 400);
  });
});
