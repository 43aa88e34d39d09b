// One simulated-agent process of bench/trap-share.ts. Reads {agents: [{name, token, address}]}
// as one JSON line on stdin, enrolls and connects each with the `bans` capability, prints
// {"ready": [...]}, then {"ban": {name, address, at}} for every ban address a BanUpdate
// brings (at: epoch ms taken on arrival). A later line {"trap": {name, address}} makes that
// agent report a trap hit; it prints {"sent": {address, at}} just before sending.
import { createInterface } from "node:readline";
import { SimAgent } from "../../test/support/grpc-fleet.ts";

const rl = createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const spec = JSON.parse((await lines.next()).value as string) as {
  agents: { name: string; token: string; address: string }[];
};
const print = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");
const agents: SimAgent[] = new Array(spec.agents.length);
let next = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    for (let i = next++; i < spec.agents.length; i = next++) {
      const a = spec.agents[i]!;
      const sim = await SimAgent.enroll(a.address, a.token, a.name);
      sim.helloFeatures = ["bans"];
      sim.onServerMessage = (m, t) => {
        for (const l of m.banUpdate?.lists ?? [])
          for (const e of l.add) print({ ban: { name: a.name, address: e.address, at: performance.timeOrigin + t } });
      };
      agents[i] = sim;
      await sim.connect({ timeoutMs: 60_000, retry: { attemptMs: 10_000, initialMs: 200, maxMs: 2_000 } });
    }
  }),
);
print({ ready: agents.map((a) => ({ name: a.name, hostId: a.hostId })) });
for (let r = await lines.next(); !r.done; r = await lines.next()) {
  const m = JSON.parse(r.value as string) as { trap?: { name: string; address: string } };
  const a = m.trap && agents.find((x) => x.name === m.trap!.name);
  if (!a || !m.trap) continue;
  print({ sent: { address: m.trap.address, at: performance.timeOrigin + performance.now() } });
  a.send({ trapHits: { addresses: [m.trap.address] } });
}
for (const a of agents) a.close();
process.exit(0);
