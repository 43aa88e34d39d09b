// One simulated-agent process of bench/fanout.ts and bench/mtls-procs.ts. Reads
// {agents: [{name, token, address, enroll?}]} as one JSON line on stdin, enrolls and
// connects each (plain grpc-js clients answering DesiredState with "applied" at once; with
// `enroll`, the enrollment port of a mutual-TLS API: the pinned CA, a CSR, then the stream
// on the client certificate), prints {"ready": [{name, hostId}]}, then one line
// {"confirm": {targetId, at}} per Confirm received (at: epoch ms with sub-ms precision, taken
// when the Confirm arrived). Later lines are commands: {"drop": true} closes every stream
// and answers {"dropped": n}; {"connect": true} opens them all again at once and answers
// {"connected": {at: [epoch ms of each agent's heartbeat echo], retries, failed}}.
// Exits when stdin closes (the bench ends it).
import { createInterface } from "node:readline";
import { SimAgent } from "../../test/support/grpc-fleet.ts";

// As the real agent: a connect that fails or gets no heartbeat echo in 30 s is retried
// after an exponential, jittered delay.
const RETRY = { attemptMs: 30_000, initialMs: 500, maxMs: 10_000 };
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const first = await lines.next();
const spec = JSON.parse(String(first.value)) as {
  agents: { name: string; token: string; address: string; enroll?: string }[];
};
const agents: SimAgent[] = new Array(spec.agents.length);
let next = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    for (let i = next++; i < spec.agents.length; i = next++) {
      const a = spec.agents[i]!;
      agents[i] = a.enroll
        ? await SimAgent.enrollPinned(a.enroll, a.address, a.token, a.name)
        : await SimAgent.enroll(a.address, a.token, a.name);
      await agents[i]!.connect({ timeoutMs: 300_000, retry: RETRY });
    }
  }),
);
process.stdout.write(JSON.stringify({ ready: agents.map((a) => ({ name: a.name, hostId: a.hostId })) }) + "\n");

// Report each Confirm once; its time was taken on arrival (SimAgent.confirmedAt), so this
// poll only delays the report, not the figure.
const reported = new Set<string>();
const timer = setInterval(() => {
  for (const a of agents) {
    for (const [targetId, t] of a.confirmedAt) {
      if (reported.has(targetId)) continue;
      reported.add(targetId);
      process.stdout.write(JSON.stringify({ confirm: { targetId, at: performance.timeOrigin + t } }) + "\n");
    }
  }
}, 5);
for (;;) {
  const l = await lines.next();
  if (l.done) break;
  const cmd = JSON.parse(String(l.value)) as { drop?: boolean; connect?: boolean };
  if (cmd.drop) {
    for (const a of agents) a.close();
    process.stdout.write(JSON.stringify({ dropped: agents.length }) + "\n");
  }
  if (cmd.connect) {
    const before = agents.reduce((n, a) => n + a.retries, 0);
    // An agent that gives up (a refusal, or no echo within its deadline) is counted, not
    // fatal: the bench reports how many failed beside the times of the others.
    const failures: string[] = [];
    const at = await Promise.all(
      agents.map(async (a) => {
        try {
          await a.connect({ timeoutMs: 300_000, retry: RETRY });
          return performance.timeOrigin + performance.now();
        } catch (e) {
          failures.push(`${a.name}: ${(e as Error).message}; stream ended ${JSON.stringify(a.endedWith)}`);
          return null;
        }
      }),
    );
    const retries = agents.reduce((n, a) => n + a.retries, 0) - before;
    for (const f of failures.slice(0, 5)) process.stderr.write(`connect failed: ${f}\n`);
    process.stdout.write(
      JSON.stringify({ connected: { at: at.filter((t) => t !== null), retries, failed: failures.length } }) + "\n",
    );
  }
}
clearInterval(timer);
for (const a of agents) a.close();
process.exit(0);
