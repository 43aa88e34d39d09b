// The agent-facing gRPC side of the API.
export { agentGrpcService, startAgentServer, type AgentServerOptions, type RunningAgentServer } from "./server.ts";
export { publishToHost, type HostNotice } from "./bus.ts";
export { agentService, LOADER_OPTIONS, MAX_MESSAGE_BYTES, PROTO_PATH, type ServerMessage } from "./proto.ts";
export { silentLog, type AgentContext, type Log } from "./context.ts";
