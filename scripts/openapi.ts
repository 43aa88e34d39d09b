// Prints the OpenAPI document (what GET /openapi.json serves) without a database or
// Redis: the app is built with clients that never connect. `npm run lint:openapi` lints it.
import { Redis } from "ioredis";
import { buildApp } from "../src/api/app.ts";
import { loadConfig } from "../src/api/config.ts";
import { createDb } from "../src/api/db/client.ts";

const config = loadConfig({});
const db = createDb(config.databaseUrl);
const redis = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: false });
const app = await buildApp({ config, db, redis });
await app.ready();
process.stdout.write(`${JSON.stringify(app.swagger(), null, 2)}\n`);
await app.close();
await db.$disconnect();
redis.disconnect();
