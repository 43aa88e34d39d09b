// connlimit and -j SET, proved with real connections: the tor-relay idiom (a source with more
// than N connections goes into a set; the set's members are dropped) runs as a shell script
// for real in one namespace (iptables + ipset) and through `import --execute` + renderNft in
// another. The client holds connections open; both servers let the same number through and
// both list the client in the set afterwards.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab, type Background } from "../support/netns.ts";
import { executeScript } from "../../src/cli/execute.ts";
import { importRecorded } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";

const lab: NetnsLab = createLab();
interface Pair {
  client: string;
  server: string;
  target: string;
  clientIp: string;
}
const pairs: Pair[] = [];
const listeners: Background[] = [];
before(async () => {
  for (let i = 0; i < 2; i++) {
    const { client, server, link } = await lab.pair();
    pairs.push({ client, server, target: link.b.ip4, clientIp: link.a.ip4 });
    // Holds every connection in its backlog (no accept needed) for the test's life.
    listeners.push(
      lab.background(server, [
        "/usr/bin/python3",
        "-c",
        "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 9001))\ns.listen(64)\nprint('listening', flush=True)\ntime.sleep(60)",
      ]),
    );
  }
  for (const l of listeners) {
    for (let i = 0; i < 100 && !l.output().includes("listening"); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(l.output(), /listening/);
  }
});
after(() => lab.cleanup());

const SCRIPT = `#!/bin/sh
PORT=9001
ipset create conn-hogs hash:ip family inet timeout 600
iptables -A INPUT -p tcp --dport $PORT -m set --match-set conn-hogs src -j DROP
iptables -A INPUT -p tcp --syn --dport $PORT -m connlimit --connlimit-mask 32 --connlimit-above 3 -j SET --add-set conn-hogs src
iptables -A INPUT -p tcp --syn --dport $PORT -m connlimit --connlimit-above 3 -j REJECT --reject-with tcp-reset
`;

/** Open `n` connections one after another and keep them; how many were established. */
async function connect(p: Pair, n: number): Promise<number> {
  const py = `import socket\nok=0\nkeep=[]\nfor i in range(${n}):\n  s=socket.socket(); s.settimeout(1.5)\n  try:\n    s.connect((${JSON.stringify(p.target)}, 9001)); ok+=1; keep.append(s)\n  except Exception: pass\nprint(ok)`;
  const r = await lab.exec(p.client, ["/usr/bin/python3", "-c", py], { timeoutMs: 30_000 });
  return Number(r.stdout.trim());
}

test("tor-relay idiom: connlimit above 3 adds the source to a set and refuses; the set then drops it, in iptables and in the nft rendering", async () => {
  const [ipt, nft] = pairs as [Pair, Pair];
  // The original, for real: the script in the server namespace with the real iptables and ipset.
  await lab.exec(ipt.server, ["sh", "-c", SCRIPT]);
  // The import: the same script in the sandbox, recorded, imported and rendered.
  const run = await executeScript(SCRIPT, { timeoutMs: 20_000 });
  assert.equal(run.exitCode, 0, run.output);
  const imported = importRecorded(run.commands);
  assert.deepEqual(imported.errors, []);
  assert.deepEqual(validatePolicy(imported.policy!).errors, []);
  const text = renderNft(imported.policy!);
  assert.ok(text.ok, JSON.stringify(!text.ok && text.errors));
  await lab.nft(nft.server, ["-f", "-"], text.text);

  const first = [await connect(ipt, 5), await connect(nft, 5)];
  assert.deepEqual(first, [3, 3], "three connections are let through, the fourth and fifth refused");
  // The fourth SYN put the client into the set: now every connection is dropped.
  const ipset = await lab.exec(ipt.server, ["ipset", "list", "conn-hogs"]);
  assert.match(ipset.stdout, new RegExp(`^${ipt.clientIp.replaceAll(".", "\\.")} timeout`, "m"));
  const set = await lab.nft(nft.server, ["list", "set", "inet", "palisade", "conn_hogs"]);
  assert.match(set.stdout, new RegExp(`${nft.clientIp.replaceAll(".", "\\.")} (timeout|expires)`));
  assert.deepEqual([await connect(ipt, 1), await connect(nft, 1)], [0, 0], "a listed source gets no connection at all");
});
