// One simulated-agent process of bench/fleet-ingest.ts. Reads one JSON line on stdin:
// {agents: [{name, token, address}], addresses, intervalMs, table}; enrolls and connects
// each agent (grpc-js clients, test/support/grpc-fleet.ts), prints {"ready": n}. Then per
// line {"run": {hosts: [indexes], ms}}: those agents report every intervalMs (offsets
// spread over the interval) one TelemetryBatch of `addresses` accounting rows, as the
// real agent's spool does: each batch is queued, at most WINDOW are unacknowledged at
// once, the rest wait in order. At the end prints {"result": {...}}: batches sent and
// acked, ack lag (send to ack, ms) of each acked batch, the largest backlog seen, and
// the backlog left. Exits when stdin closes.
import { createInterface } from "node:readline";
import { SimAgent } from "../../test/support/grpc-fleet.ts";

const WINDOW = 4;
const lines = createInterface({ input: process.stdin });
const queue: string[] = [];
let wake: (() => void) | undefined;
lines.on("line", (l) => {
  queue.push(l);
  wake?.();
});
const nextLine = async (): Promise<string> => {
  while (queue.length === 0) await new Promise<void>((r) => (wake = r));
  return queue.shift()!;
};
const spec = JSON.parse(await nextLine()) as {
  agents: { name: string; token: string; address: string }[];
  addresses: number;
  intervalMs: number;
  table: string;
  firstIp: number;
};

const agents: SimAgent[] = new Array(spec.agents.length);
let next = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    for (let i = next++; i < spec.agents.length; i = next++) {
      const a = spec.agents[i]!;
      agents[i] = await SimAgent.enroll(a.address, a.token, a.name);
      await agents[i]!.connect({ timeoutMs: 60_000, retry: { attemptMs: 10_000, initialMs: 200, maxMs: 2_000 } });
    }
  }),
);
const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** Per agent: its queued and unacknowledged batches (seq -> time sent). */
interface State {
  seq: number;
  pending: number[]; // seqs queued, not sent yet
  inflight: Map<string, number>;
}
const states = agents.map<State>(() => ({ seq: 0, pending: [], inflight: new Map() }));
let lags: number[] = [];
let acked = 0;
let sent = 0;
const epoch = `bench-${process.pid}`;

agents.forEach((a, i) => {
  const st = states[i]!;
  const self = a as unknown as { onMessage: (m: Record<string, unknown>) => void };
  const orig = self.onMessage.bind(a);
  self.onMessage = (m) => {
    const ack = m.telemetryAck as { seq: string } | undefined;
    if (!ack) return orig(m);
    a.received.length = 0; // only acks and heartbeats arrive here; keep memory flat
    const t = st.inflight.get(String(ack.seq));
    if (t !== undefined) {
      st.inflight.delete(String(ack.seq));
      lags.push(performance.now() - t);
      acked++;
      pump(i);
    }
  };
});

/** Rows of one batch: the same addresses every interval, counters varying a little. */
function batchOf(seq: number) {
  const accounting = new Array(spec.addresses);
  for (let k = 0; k < spec.addresses; k++) {
    accounting[k] = {
      table: spec.table,
      ip: ip(spec.firstIp + k),
      srcBytes: String(1000 + ((k * 31 + seq) % 5000)),
      srcPackets: String(3 + (k % 7)),
      dstBytes: String(500 + ((k * 17 + seq) % 3000)),
      dstPackets: String(2 + (k % 5)),
    };
  }
  return { epoch, seq: String(seq), takenAtUnixMs: String(Date.now()), accounting };
}

function pump(i: number): void {
  const st = states[i]!;
  while (st.inflight.size < WINDOW && st.pending.length > 0) {
    const seq = st.pending.shift()!;
    st.inflight.set(String(seq), performance.now());
    agents[i]!.send({ telemetry: batchOf(seq) });
    sent++;
  }
}

process.stdout.write(`${JSON.stringify({ ready: agents.length })}\n`);

for (;;) {
  const l = await nextLine().catch(() => "");
  if (!l) break;
  const { run } = JSON.parse(l) as { run: { hosts: number[]; ms: number } };
  lags = [];
  acked = 0;
  sent = 0;
  let maxBacklog = 0;
  const timers: NodeJS.Timeout[] = [];
  const t0 = performance.now();
  run.hosts.forEach((h, j) => {
    const offset = (j * spec.intervalMs) / run.hosts.length;
    const tick = () => {
      const st = states[h]!;
      st.pending.push(++st.seq);
      pump(h);
    };
    timers.push(
      setTimeout(() => {
        tick();
        timers.push(setInterval(tick, spec.intervalMs));
      }, offset),
    );
  });
  const sampler = setInterval(() => {
    const b = states.reduce((a, s) => a + s.pending.length + s.inflight.size, 0);
    if (b > maxBacklog) maxBacklog = b;
  }, 250);
  await new Promise((r) => setTimeout(r, run.ms));
  for (const t of timers) clearTimeout(t);
  clearInterval(sampler);
  const elapsed = performance.now() - t0;
  const backlog = states.reduce((a, s) => a + s.pending.length + s.inflight.size, 0);
  process.stdout.write(
    `${JSON.stringify({ result: { sent, acked, lags, maxBacklog, backlog, elapsedMs: elapsed } })}\n`,
  );
  // Drain before the next run: drop what is still queued (the driver counts it as backlog).
  for (const s of states) s.pending.length = 0;
}
for (const a of agents) a.close();
process.exit(0);
