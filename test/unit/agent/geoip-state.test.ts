// geoip.json: the country data the agent holds, kept across restarts. Written 0600 and
// whole after every update; read at start; a file with anything wrong in it is ignored
// whole with a warning (its intervals would go into nft text as they are).
// The kernel side (a reboot with the API away) is test/kernel/geoip-agent.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GeoKeeper } from "../../../src/agent/geoip.ts";
import { parseGeoState, serializeGeoState } from "../../../src/agent/geoip-state.ts";
import { memoryLog } from "../../../src/runtime/log.ts";
import type { GeoIpUpdate } from "../../../src/protocol/agent.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "palisade-geoip-state-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A keeper whose kernel step never runs (the lock returns without calling it): the file only. */
function keeper(file: string, log = memoryLog()) {
  const k = new GeoKeeper(
    {},
    async () => undefined as never,
    log,
    () => false,
    file,
  );
  return { k, log };
}

const full = (country: string, revision: number, ipv4: string[], ipv6: string[] = []) => ({
  country,
  revision: String(revision),
  fromRevision: "0",
  full: true,
  ipv4Add: ipv4,
  ipv4Del: [],
  ipv6Add: ipv6,
  ipv6Del: [],
});

test("every update is written whole (0600, no temp file left) and read back at start", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "geoip.json");
    const { k } = keeper(file);
    await k.update({
      countries: [
        full("CN", 2, ["198.51.100.0-198.51.100.255"], ["2001:db8:1::-2001:db8:1::ffff"]),
        full("DE", 2, ["203.0.113.0-203.0.113.255"]),
      ],
    } as GeoIpUpdate);
    await k.update({
      countries: [
        {
          country: "CN",
          revision: "3",
          fromRevision: "2",
          full: false,
          ipv4Add: ["198.51.100.0-198.51.100.5"],
          ipv4Del: ["198.51.100.0-198.51.100.255"],
          ipv6Add: [],
          ipv6Del: [],
        },
      ],
    } as GeoIpUpdate);
    await k.saved();
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ["geoip.json"]);
    const saved = JSON.parse(await readFile(file, "utf8"));
    assert.deepEqual(saved, {
      format: 1,
      countries: {
        CN: { revision: 3, ipv4: ["198.51.100.0-198.51.100.5"], ipv6: ["2001:db8:1::-2001:db8:1::ffff"] },
        DE: { revision: 2, ipv4: ["203.0.113.0-203.0.113.255"], ipv6: [] },
      },
    });
    const next = keeper(file);
    assert.equal(await next.k.load(), 2);
    assert.deepEqual(next.k.held(), { CN: 3, DE: 2 });
  });
});

test("a corrupt, truncated or unsafe file is ignored whole, with a warning naming it", async () => {
  const good = serializeGeoState(
    new Map([
      ["CN", { revision: 4, ipv4: ["198.51.100.0-198.51.100.255", "198.51.101.0-198.51.103.255"], ipv6: [] }],
      [
        "DE",
        { revision: 2, ipv4: ["203.0.113.0-203.0.113.255"], ipv6: ["2001:db8:1::-2001:db8:1::ffff", "2001:db8:2::"] },
      ],
    ]),
  );
  // Sorted and disjoint (adjacent intervals are disjoint): taken.
  assert.equal(parseGeoState(good).ok, true, JSON.stringify(parseGeoState(good)));
  const bad: [string, string, RegExp][] = [
    ["truncated", good.slice(0, Math.floor(good.length / 2)), /not JSON/],
    ["empty", "", /not JSON/],
    ["another format", good.replace('"format":1', '"format":2'), /format/],
    [
      "a reversed interval in the second country",
      good.replace("203.0.113.0-203.0.113.255", "203.0.113.9-203.0.113.1"),
      /at \/countries\/DE\/ipv4\/0: not an ipv4 interval/,
    ],
    [
      "nft text in an interval",
      good.replace("2001:db8:2::", "2001:db8:2:: }; flush ruleset; {"),
      /countries\/DE\/ipv6\/1/,
    ],
    ["an IPv6 interval in the IPv4 list", good.replace("198.51.100.0-198.51.100.255", "2001:db8::"), /CN\/ipv4\/0/],
    ["a bad country code", good.replace('"DE"', '"de"'), /countries/],
    // Each valid, but one refill transaction of them all would fail in the kernel.
    [
      "overlapping IPv4 intervals",
      good.replace("198.51.101.0-198.51.103.255", "198.51.100.200-198.51.103.255"),
      /at \/countries\/CN\/ipv4\/1: ipv4 interval 198\.51\.100\.200-198\.51\.103\.255 overlaps or comes before 198\.51\.100\.0-198\.51\.100\.255/,
    ],
    [
      "unsorted IPv4 intervals",
      good.replace(
        '"198.51.100.0-198.51.100.255","198.51.101.0-198.51.103.255"',
        '"198.51.101.0-198.51.103.255","198.51.100.0-198.51.100.255"',
      ),
      /CN\/ipv4\/1: .*sorted and disjoint/,
    ],
    ["an IPv6 address inside the interval before it", good.replace('"2001:db8:2::"', '"2001:db8:1::5"'), /DE\/ipv6\/1/],
    ["a negative revision", good.replace('"revision":4', '"revision":-4'), /CN\/revision/],
  ];
  await withDir(async (dir) => {
    const file = join(dir, "geoip.json");
    for (const [what, text, why] of bad) {
      const r = parseGeoState(text);
      assert.equal(r.ok, false, what);
      assert.match((r as { error: string }).error, why, what);
      await writeFile(file, text);
      const { k, log } = keeper(file);
      assert.equal(await k.load(), 0, what);
      assert.deepEqual(k.held(), {}, `${what}: nothing of the file is used`);
      const warn = log.lines.find((l) => l.level === 40);
      assert.ok(warn, what);
      assert.match(String(warn.msg), /geoip state file is corrupt or truncated; ignored/);
      assert.equal(warn.file, file);
    }
  });
});

test("no file: nothing held, no warning", async () => {
  await withDir(async (dir) => {
    const { k, log } = keeper(join(dir, "geoip.json"));
    assert.equal(await k.load(), 0);
    assert.deepEqual(k.held(), {});
    assert.equal(log.lines.filter((l) => (l.level as number) >= 40).length, 0);
  });
});
