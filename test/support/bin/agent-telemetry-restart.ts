// Runs as a separate process in agent-telemetry.test.ts: an agent restart. It opens the
// same state dir, resumes the collector from the spool, takes one reading, prints the
// batches it would resend (oldest first) and the new one, then acks them all.
// argv: STATE_DIR NETNS EPOCH

import { Spool } from "../../../src/agent/telemetry/spool.ts";
import { Collector } from "../../../src/agent/telemetry/collector.ts";
import { createLog } from "../../../src/runtime/log.ts";
import { StateDir } from "../../../src/agent/state.ts";
import { nftDriver } from "../../../src/engine/driver/index.ts";

const [dir, netns] = process.argv.slice(2);
const state = await StateDir.open(dir!);
const log = createLog("warn");
const spool = await Spool.open(state.spoolDir, { maxBytes: 1 << 24, maxBatches: 1000 }, log);
const collector = await Collector.create({
  driver: nftDriver({ netns: netns! }),
  spool,
  epoch: await state.epoch(),
  log,
  resumeFile: state.path("telemetry-resume.json"),
});
const resent = await spool.pending();
const batch = await collector.collect();
for (const b of await spool.pending()) await spool.ack(b.epoch, Number(b.seq));
process.stdout.write(JSON.stringify({ resent, batch, left: spool.count }) + "\n");
