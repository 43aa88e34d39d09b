// A replica that only runs the rollout worker, as a child process the resume test can
// SIGKILL mid-rollout. Config from env: DATABASE_URL, REDIS_URL, PALISADE_QUEUE_PREFIX,
// PALISADE_DEPLOY_LOCK_MS. Logs JSON lines on stdout.
import { Redis } from "ioredis";
import { createDb } from "../../../src/api/db/client.ts";
import { startDeployWorker } from "../../../src/api/deploy/worker.ts";
import type { Log } from "../../../src/api/grpc/context.ts";

const line = (level: number) => (obj: object, msg?: string) =>
  process.stdout.write(JSON.stringify({ level, time: Date.now(), pid: process.pid, ...obj, msg }) + "\n");
const log: Log = { debug: () => {}, info: line(30), warn: line(40), error: line(50) };

const db = createDb(process.env.DATABASE_URL!);
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
const worker = await startDeployWorker({ db, redis, log }, { pollMs: 100 });
const stop = async () => {
  await worker.stop();
  await db.$disconnect();
  redis.disconnect();
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
