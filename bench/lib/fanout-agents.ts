// One simulated-agent process of bench/fanout.ts. Reads {agents: [{name, token, address}]}
// as one JSON line on stdin, enrolls and connects each (plain grpc-js clients answering
// DesiredState with "applied" at once), prints {"ready": [{name, hostId}]}, then one line
// {"confirm": {targetId, at}} per Confirm received (at: epoch ms with sub-ms precision, taken
// when the Confirm arrived). Exits when stdin closes (the bench ends it).
import { createInterface } from "node:readline";
import { SimAgent } from "../../test/support/grpc-fleet.ts";

const line = await new Promise<string>((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
const spec = JSON.parse(line) as { agents: { name: string; token: string; address: string }[] };
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
process.stdin.on("end", () => {
  clearInterval(timer);
  for (const a of agents) a.close();
  process.exit(0);
});
process.stdin.resume();
