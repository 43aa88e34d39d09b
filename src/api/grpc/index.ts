// The agent-facing gRPC side of the API.
export { agentGrpcService, startAgentServer, type AgentServerOptions, type RunningAgentServer } from "./server.ts";
export { publishToHost, type HostNotice } from "../host-bus.ts";
export { silentLog, type AgentContext, type Log } from "./context.ts";
