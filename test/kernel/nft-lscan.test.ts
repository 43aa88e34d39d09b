// lscan on nftables, with real packets. --stealth: the manual's line imported, rendered and
// loaded. FIN, NULL and XMAS probes to a closed port belong to no connection (conntrack
// calls them invalid) and are dropped; without the policy the same probes are answered
// with a RST, and with it a SYN still is. --synscan, --cnscan, --grscan: a hping3 SYN
// scan, python connect scans (FIN and RST closes) and a banner grab each land in their
// kind's set only; connections with data both ways land in none.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import type { PolicyInput } from "../../src/engine/policy/index.ts";
import { applyPolicy, setElements, sleep } from "../support/nft-lab.ts";

const lab = createLab();
let p: { client: string; server: string; link: Link };
before(async () => {
  p = await lab.pair();
});
after(() => lab.cleanup());

const CLOSED = 7070;
const PROBES: Record<string, string> = { FIN: "F", NULL: "", XMAS: "FPU" };
const answered = async (flags: string) =>
  (await lab.tcpFlags(p.client, p.link.b.ip4, CLOSED, flags, { count: 5, intervalUs: 20_000 })).received;

test("without the policy a closed port answers FIN, NULL and XMAS probes", async () => {
  for (const [name, flags] of Object.entries(PROBES)) assert.equal(await answered(flags), 5, name);
});

test("-m lscan --stealth -j DROP, imported: the probes are dropped, SYNs still answered", async () => {
  const r = importPolicy("iptables", "iptables -A INPUT -p tcp -m lscan --stealth -j DROP");
  assert.deepEqual(r.errors, []);
  const v = validatePolicy(r.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, p.server, r.policy as PolicyInput);
  assert.match(text, /ct state invalid,untracked /);
  for (const [name, flags] of Object.entries(PROBES)) assert.equal(await answered(flags), 0, name);
  assert.equal(await answered("S"), 5);
});

// A server on two ports: 22 sends a banner first (like sshd), 80 waits for the client;
// both echo what they receive until the client closes.
const SERVER = `
import socket, threading
def handle(c, banner):
    try:
        if banner:
            c.sendall(b"SSH-2.0-palisade-test\\r\\n")
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    c.close()
def serve(port, banner):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c, banner), daemon=True).start()
for port, banner in ((22, True), (80, False)):
    threading.Thread(target=serve, args=(port, banner), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
`;

/** A client connection: connect, optionally read the banner, optionally send and read back, close (FIN, or RST with linger 0). */
const client = (port: number, opts: { readBanner?: boolean; send?: boolean; rst?: boolean }) => `
import socket, struct
c = socket.create_connection(("${"HOST"}", ${port}), timeout=5)
if ${opts.readBanner ? "True" : "False"}:
    assert c.recv(100).startswith(b"SSH-")
if ${opts.send ? "True" : "False"}:
    c.sendall(b"hello\\n")
    got = b""
    while len(got) < 6:
        got += c.recv(100)
if ${opts.rst ? "True" : "False"}:
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
print("done", flush=True)
`;

const KIND_SETS = { synscan: "synscanners", cnscan: "cnscanners", grscan: "grscanners" } as const;
type Kind = keyof typeof KIND_SETS;

function scanPolicy(): PolicyInput {
  const set = { type: "ipv4_addr", dynamic: true, timeoutSeconds: 300 } as const;
  return {
    sets: { synscanners: set, cnscanners: set, grscanners: set, anyscan: set },
    chains: {
      input: {
        hook: "input",
        rules: [
          ...(Object.entries(KIND_SETS) as [Kind, string][]).map(([kind, name]) => ({
            comment: `lscan ${kind}`,
            match: { protocol: "tcp", xt: { lscan: [kind] } },
            action: { type: "setUpdate", op: "add", set: name },
          })),
          {
            // Three kinds in one rule: one nft rule per kind, a packet passes at most one,
            // so even a non-verdict action runs once.
            comment: "lscan, every connection kind",
            match: { protocol: "tcp", xt: { lscan: ["synscan", "cnscan", "grscan"] } },
            action: { type: "setUpdate", op: "add", set: "anyscan" },
          },
        ],
      },
    },
  } as PolicyInput;
}

/** Which of the sets hold the client's address. */
async function caughtAs(): Promise<string[]> {
  const out: string[] = [];
  for (const name of [...Object.values(KIND_SETS), "anyscan"]) {
    const els = await setElements(lab, p.server, name);
    if (els.some((e) => e.key === p.link.a.ip4)) out.push(name);
  }
  return out;
}

async function flushSets(): Promise<void> {
  for (const name of [...Object.values(KIND_SETS), "anyscan"])
    await lab.nft(p.server, ["flush", "set", "inet", "palisade", name]);
}

/** Run the client script in the client namespace. */
async function connect(port: number, opts: Parameters<typeof client>[1]): Promise<void> {
  const r = await lab.exec(p.client, ["python3", "-c", client(port, opts).replace("HOST", p.link.b.ip4)], {
    timeoutMs: 10_000,
  });
  assert.match(r.stdout, /done/);
}

/** Wait (bounded) until the client's address is in `expected` sets, then return where it is. */
async function settle(expected: string[]): Promise<string[]> {
  let got = await caughtAs();
  for (let i = 0; i < 40 && expected.some((e) => !got.includes(e)); i++) {
    await sleep(50);
    got = await caughtAs();
  }
  // The connection's last packets (the responder's FIN, the final ACKs) have had time to pass.
  await sleep(300);
  return caughtAs();
}

test("--synscan, --cnscan, --grscan on nftables: each scan kind caught as its kind, data both ways never", async () => {
  const doc = scanPolicy();
  const v = validatePolicy(doc, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, p.server, doc);
  assert.match(text, /lscan_track_prerouting \{ type filter hook prerouting priority mangle - 1/);
  const server = lab.background(p.server, ["python3", "-c", SERVER]);
  try {
    for (let i = 0; i < 50 && !server.output().includes("ready"); i++) await sleep(100);
    assert.ok(server.output().includes("ready"), server.output());

    // Normal connections, data both ways (banner first, and client first): never a scan.
    await connect(22, { readBanner: true, send: true });
    await connect(80, { send: true });
    await connect(80, { send: true, rst: true });
    assert.deepEqual(await settle([]), []);

    // SYN scan: hping3's SYN to the open port; the SYN-ACK reaches a client kernel with no
    // socket, which answers with a RST instead of the ACK.
    const syn = await lab.exec(p.client, ["hping3", "-q", "-S", "-p", "80", "-c", "1", p.link.b.ip4], {
      allowFailure: true,
      timeoutMs: 10_000,
    });
    assert.match(syn.stdout + syn.stderr, /1 packets received/);
    assert.deepEqual(await settle(["synscanners", "anyscan"]), ["synscanners", "anyscan"]);
    await flushSets();

    // Connect scan: handshake, then close without data (FIN; then again with a RST).
    await connect(80, {});
    assert.deepEqual(await settle(["cnscanners", "anyscan"]), ["cnscanners", "anyscan"]);
    await flushSets();
    await connect(80, { rst: true });
    assert.deepEqual(await settle(["cnscanners", "anyscan"]), ["cnscanners", "anyscan"]);
    await flushSets();

    // Banner grab: the server sends its banner, the client reads it and closes silently.
    await connect(22, { readBanner: true });
    assert.deepEqual(await settle(["grscanners", "anyscan"]), ["grscanners", "anyscan"]);
    await flushSets();

    // And a normal connection after the scans is still not one.
    await connect(22, { readBanner: true, send: true });
    assert.deepEqual(await settle([]), []);
  } finally {
    await server.stop();
  }
});
