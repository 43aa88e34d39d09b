// The agent protocol's one loader, shared by the API (src/api/grpc) and the agent
// (src/agent), which must not import each other: proto/palisade/v1/agent.proto loaded
// with the proto-loader options both sides' TypeScript shapes are written for —
// camelCase fields, uint64 as decimal strings (no precision loss), enums by name,
// defaults filled in, and `body` naming the oneof member that is set. proto3 `optional`
// fields (LogEvent.ctmark) keep their presence under these options (measured with
// proto-loader 0.8): unset stays absent from the decoded object (`defaults` does not
// fill members of the synthetic oneof), set — even to 0 — is present, alongside
// `_ctmark: "ctmark"` from `oneofs`; an undefined/null value is not encoded. Each side keeps its
// own message typings (src/api/grpc/proto.ts, src/agent/proto.ts). Not for the engine,
// which has no gRPC.
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { installRoot } from "../runtime/install-root.ts";

export const PROTO_PATH = join(installRoot(import.meta.url), "proto/palisade/v1/agent.proto");

export const LOADER_OPTIONS = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true } as const;

/** Largest message either side accepts. Telemetry batches are the big ones; a policy is far smaller. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

type ServiceCtor = grpc.ServiceClientConstructor;

let cached: { service: grpc.ServiceDefinition; Client: ServiceCtor } | undefined;

/** palisade.v1.AgentService: its definition (servers) and client constructor (agents, tests). */
export function agentService(): { service: grpc.ServiceDefinition; Client: ServiceCtor } {
  if (cached) return cached;
  const def = loadSync(PROTO_PATH, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { palisade: { v1: { AgentService: ServiceCtor } } };
  const Client = pkg.palisade.v1.AgentService;
  cached = { service: Client.service, Client };
  return cached;
}
