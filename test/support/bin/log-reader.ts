// Runs as a separate process in agent-unit-caps.test.ts, under the systemd unit's user
// and capability set (setpriv), inside a lab namespace: the agent's log reader as the
// agent runs it (LogGroups: programs looked up on PATH, groups read from the kernel with
// nft, one tcpdump per group, ct marks via conntrack). Prints one JSON line
// {"ready": {groups, unavailable}} once the readers listen (or failed), then one line per
// event; exits after `want` events or `deadlineMs`, stopping its readers itself.
// argv: WANT DEADLINE_MS

import { createLog } from "../../../src/runtime/log.ts";
import { checkPrograms } from "../../../src/agent/programs.ts";
import { LogGroups } from "../../../src/agent/telemetry/log-groups.ts";

const [want, deadlineMs] = process.argv.slice(2).map(Number) as [number, number];
const programs = checkPrograms();
let seen = 0;
let finish: () => void = () => {};
const finished = new Promise<void>((r) => (finish = r));
const groups = new LogGroups({
  driver: {},
  log: createLog("warn"),
  tcpdumpPath: programs.found.tcpdump,
  setprivPath: programs.found.setpriv,
  conntrackPath: programs.found.conntrack,
  onEvents: (events) => {
    for (const e of events) process.stdout.write(JSON.stringify({ event: e }) + "\n");
    seen += events.length;
    if (seen >= want) finish();
  },
});
await groups.syncFromKernel();
process.stdout.write(
  JSON.stringify({ ready: { groups: groups.groups(), unavailable: [...programs.missing, ...groups.unavailable()] } }) +
    "\n",
);
const timer = setTimeout(finish, deadlineMs);
await finished;
clearTimeout(timer);
await groups.stop();
