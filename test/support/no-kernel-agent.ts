// A real agent client with no kernel behind it: fixed capabilities (no features), handlers
// that ignore what the API sends, and short timings. For tests of enrollment, TLS and
// the stream itself, where the firewall is beside the point.
import { AgentClient, type ClientOptions } from "../../src/agent/client.ts";

export function noKernelAgent(
  opts: Omit<ClientOptions, "tls" | "capabilities" | "hello" | "handlers"> & { connected?: () => void },
): AgentClient {
  const { connected, ...rest } = opts;
  return new AgentClient({
    tls: false,
    capabilities: async () => ({
      nftVersion: "1.0.9",
      kernel: "6.1",
      ipv6: true,
      features: [],
      xtablesModules: [],
      agentVersion: "test",
      unavailable: [],
    }),
    hello: async () => ({ telemetryEpoch: "e1" }),
    handlers: {
      desiredState() {},
      confirm() {},
      checkDrift() {},
      quotaReset() {},
      telemetryAck() {},
      connected: () => connected?.(),
    },
    backoff: { initialMs: 50, maxMs: 200 },
    heartbeatMs: 200,
    deadlineMs: 5_000,
    ...rest,
  });
}
