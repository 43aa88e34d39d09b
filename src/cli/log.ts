// The log of CLI verbs that run without the server (migrate, ca init): the server's pino
// lines (src/runtime/log.ts), on stdout.
import { createLog, type Logger } from "../runtime/log.ts";

export const cliLog = (): Logger => createLog("info", 1);
