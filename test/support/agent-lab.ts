// The agent's kernel-test fixture: a lab namespace pair (the agent manages `ns`, `peer`
// sends it traffic), a real gRPC peer in this process (TestApi), a throwaway state dir and
// the agent itself (startAgent), all torn down by close() even when a test failed.
// Tests that need more (a second API, a namespace without a pair) build on its parts.
// The agent channel is mutual TLS like the product's default (test-api.ts); `plaintext`
// only for tests about plaintext.

import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/agent/config.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { startAgent, type AgentHandle, type StartOptions } from "../../src/agent/main.ts";
import { createLab, type Link, type NetnsLab } from "./netns.ts";
import { TestApi } from "./test-api.ts";

type AgentDeps = StartOptions;

export interface AgentLabOptions {
  /** Prefix of the state dir's name (names the test in /tmp). */
  name: string;
  /** A pair (default) or one namespace with no peer (recovery tests that send no traffic). */
  pair?: boolean;
  /** The agent channel without TLS (only tests about plaintext); default mutual TLS. */
  plaintext?: boolean;
}

export interface AgentLab {
  lab: NetnsLab;
  /** The namespace the agent manages. */
  ns: string;
  /** The other end of the pair ("" without a pair). */
  peer: string;
  link: Link | undefined;
  api: TestApi;
  /** The agent's state dir. */
  dir: string;
  /** The running agent, if any. */
  agent: AgentHandle | undefined;
  /** Agent flags for this lab: server, state dir, netns, name, no periodic drift or telemetry unless `extra` says. */
  args(extra?: string[], server?: string): string[];
  /** Start the agent with these flags (see args) and the tests' fast backoff and heartbeat. */
  start(extra?: string[], deps?: Partial<AgentDeps>, server?: string): Promise<AgentHandle>;
  /** Stop the running agent (no-op without one). */
  stopAgent(): Promise<void>;
  /** Sequence numbers of the telemetry batches in the agent's spool (sent, not yet acked). */
  spooled(): Promise<number[]>;
  /** `nft list table inet palisade` in ns ("" when there is none). */
  list(): Promise<string>;
  close(): Promise<void>;
}

export async function openAgentLab(o: AgentLabOptions): Promise<AgentLab> {
  const lab = createLab();
  const api = new TestApi({ plaintext: o.plaintext ?? false });
  let dir = "";
  try {
    let ns: string;
    let peer = "";
    let link: Link | undefined;
    if (o.pair === false) ns = await lab.addNamespace();
    else {
      const p = await lab.pair();
      ns = p.server;
      peer = p.client;
      link = p.link;
    }
    await api.start();
    dir = await mkdtemp(join(tmpdir(), `palisade-${o.name}-`));
    const fixture: AgentLab = {
      lab,
      ns,
      peer,
      link,
      api,
      dir,
      agent: undefined,
      args(extra = [], server = `127.0.0.1:${api.port}`) {
        // Later flags win in parseArgs, so `extra` may override these defaults.
        return [
          "--server",
          server,
          ...api.enrollArgs(),
          "--state-dir",
          dir,
          "--name",
          `edge-${o.name}`,
          "--netns",
          ns,
          "--telemetry-interval",
          "60",
          "--drift-interval",
          "0",
          ...extra,
        ];
      },
      async start(extra = [], deps = {}, server) {
        await fixture.stopAgent(); // one left running by a failed test
        const agent = await startAgent(loadConfig(fixture.args(extra, server)), {
          log: memoryLog("warn"),
          backoff: { initialMs: 100, maxMs: 300 },
          heartbeatMs: 500,
          ...deps,
        });
        fixture.agent = agent;
        return agent;
      },
      async stopAgent() {
        const a = fixture.agent;
        fixture.agent = undefined;
        await a?.stop();
      },
      async spooled() {
        const names = await readdir(join(dir, "spool")).catch(() => [] as string[]);
        return names.flatMap((n) => (/^b-(\d+)\.json$/.exec(n) ? [Number(/^b-(\d+)/.exec(n)![1])] : []));
      },
      async list() {
        return (await lab.nft(ns, ["list", "table", "inet", "palisade"], undefined, { allowFailure: true })).stdout;
      },
      async close() {
        await fixture.stopAgent().catch(() => undefined);
        await api.stop();
        await lab.cleanup();
        await rm(dir, { recursive: true, force: true });
      },
    };
    return fixture;
  } catch (e) {
    await api.stop();
    await lab.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
