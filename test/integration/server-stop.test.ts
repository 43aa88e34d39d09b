// Shutdown is bounded: a background service whose stop never ends (a BullMQ worker whose
// blocking connection was lost with Redis once never finished close(), and `palisade
// server` then ignored SIGTERM for good) is left behind after serviceStopMs, and the
// services started before it are still stopped, newest first.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfig } from "../../src/api/config.ts";
import { runServer } from "../../src/api/server.ts";
import type { BackgroundService } from "../../src/api/services.ts";
import { createTestDatabase, TEST_REDIS_URL } from "../support/db.ts";
import { freePorts } from "../support/ports.ts";

test("a service that never stops does not keep the server from shutting down", { timeout: 60_000 }, async () => {
  const database = await createTestDatabase({ migrated: false });
  const dir = mkdtempSync(join(tmpdir(), "palisade-stop-"));
  try {
    const [port] = (await freePorts(1)) as [number];
    const config = loadConfig({
      DATABASE_URL: database.url,
      REDIS_URL: TEST_REDIS_URL,
      HOST: "127.0.0.1",
      PORT: String(port),
      PALISADE_GRPC_PLAINTEXT: "1",
      PALISADE_INITIAL_TOKEN_FILE: join(dir, "token"),
      LOG_LEVEL: "silent",
    });
    const stopped: string[] = [];
    const service = (name: string, stop: () => Promise<void>): BackgroundService => ({
      name,
      start: async () => ({
        stop: async () => {
          stopped.push(name);
          await stop();
        },
      }),
    });
    const server = await runServer(config, {
      services: [
        service("first", async () => {}),
        service("hangs", () => new Promise<void>(() => {})),
        service("fails", async () => {
          throw new Error("boom");
        }),
      ],
      serviceStopMs: 300,
    });
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    await server.close();
    assert.deepEqual(stopped, ["fails", "hangs", "first"], "every service was asked to stop, newest first");
    await assert.rejects(fetch(`${server.url}/healthz`), "the HTTP listener is closed");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await database.drop();
  }
});
