// A refill from the held country data that the kernel refuses (src/agent/geoip.ts, forget):
// the held revisions match the API's, so asking with them would get nothing back and leave
// the sets as they are. The keeper must drop those countries (in memory and in geoip.json)
// and ask for them whole (revision 0). Real nft in a lab namespace, the agent's GeoKeeper
// with the nft driver; no API: its requests are recorded. The kernel is made to refuse by a
// policy table whose CN set is replaced behind the agent with one of `size 1` (two
// intervals do not fit): after that kernel change (resync), and when a delta is refused and
// the refill that follows it is refused too.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { GeoKeeper } from "../../src/agent/geoip.ts";
import { renderNft } from "../../src/engine/index.ts";
import { Policy } from "../../src/engine/policy/index.ts";
import type { GeoIpRequest, GeoIpUpdate } from "../../src/protocol/agent.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { createLab, type NetnsLab } from "../support/netns.ts";

const V4 = ["198.51.100.0-198.51.100.255", "203.0.113.0-203.0.113.255"];
const V6 = ["2001:db8:1::-2001:db8:1::ffff"];

let lab: NetnsLab;
let dir = "";
before(async () => {
  lab = createLab();
  dir = await mkdtemp(join(tmpdir(), "palisade-geoip-refused-"));
});
after(async () => {
  await lab?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const policyText = (() => {
  const r = renderNft(
    Policy.parse({
      chains: { input: { hook: "input", rules: [{ match: { xt: { geoip: { source: ["CN"] } } }, action: "drop" }] } },
    }),
  );
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.text;
})();

/** The same table with geo_v4_CN limited to one element: the kernel refuses a refill of two intervals. */
function tooSmall(text: string): string {
  const out = text.replace(/(add set inet palisade geo_v4_CN \{[^}]*?; )\}/, "$1size 1 ; }");
  assert.notEqual(out, text, "the CN set's declaration was not found");
  return out;
}

/** A keeper on the lab namespace's policy table, with CN held at revision 3 (in the kernel too). */
async function keeperWithCn(name: string) {
  const ns = await lab.addNamespace();
  await lab.nft(ns, ["-f", "-"], policyText);
  const sent: GeoIpRequest[] = [];
  const log = memoryLog("debug");
  const file = join(dir, `${name}.json`);
  const k = new GeoKeeper(
    { netns: ns },
    (fn) => fn(),
    log,
    (m) => {
      sent.push(m);
      return true;
    },
    file,
  );
  await k.resync();
  await k.update({
    countries: [
      {
        country: "CN",
        revision: "3",
        fromRevision: "0",
        full: true,
        ipv4Add: V4,
        ipv4Del: [],
        ipv6Add: V6,
        ipv6Del: [],
      },
    ],
  } as GeoIpUpdate);
  assert.deepEqual(k.held(), { CN: 3 });
  const listed = (await lab.nft(ns, ["list", "set", "inet", "palisade", "geo_v4_CN"])).stdout;
  assert.match(listed, /198\.51\.100\.0\/24/, listed);
  // Behind the agent: the table comes back with a CN set too small for the held data.
  await lab.nft(ns, ["-f", "-"], tooSmall(policyText)); // it deletes and adds the table
  sent.length = 0;
  return { k, sent, log, file };
}

async function assertForgotten(
  k: GeoKeeper,
  sent: GeoIpRequest[],
  log: ReturnType<typeof memoryLog>,
  file: string,
): Promise<void> {
  assert.ok(
    log.lines.some((l) => l.msg === "geoip sets not refilled from the held data; those countries are asked for whole"),
    JSON.stringify(log.lines.slice(-5)),
  );
  assert.deepEqual(k.held(), {}, "the held revision of CN is dropped");
  assert.deepEqual(sent.at(-1), { countries: [{ country: "CN", revision: "0" }] }, "CN asked for whole");
  await k.saved();
  const kept = await readFile(file, "utf8");
  assert.doesNotMatch(kept, /"CN"/, `geoip.json still holds CN: ${kept}`);
}

test("a refill after a kernel change that the kernel refuses: CN dropped (memory and file), asked for whole", async () => {
  const { k, sent, log, file } = await keeperWithCn("resync");
  await k.resync();
  await assertForgotten(k, sent, log, file);
});

test("a delta the kernel refuses, then a refill it refuses too: CN dropped, asked for whole", async () => {
  const { k, sent, log, file } = await keeperWithCn("delta");
  // The new CN set holds one element at most: the delta's two new intervals are refused.
  const applied = await k.update({
    countries: [
      {
        country: "CN",
        revision: "4",
        fromRevision: "3",
        full: false,
        ipv4Add: ["100.64.0.0-100.64.0.255", "100.64.2.0-100.64.2.255"],
        ipv4Del: [],
        ipv6Add: [],
        ipv6Del: [],
      },
    ],
  } as GeoIpUpdate);
  assert.equal(applied, undefined, "the update did not reach the kernel");
  assert.ok(log.lines.some((l) => l.msg === "geoip delta refused by the kernel; refilling those countries"));
  await assertForgotten(k, sent, log, file);
});
