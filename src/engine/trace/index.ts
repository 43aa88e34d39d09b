// What-if traces (pure half): packet specs and `nft monitor trace` parsing. The runner is driver/trace.ts.
export { parsePacketSpec, PacketSpecError, type PacketSpec, type TraceProtocol } from "./packet.ts";
export {
  parseTraceLine,
  summarizeTrace,
  type PacketTrace,
  type TraceLine,
  type TraceStep,
  type TraceVerdict,
} from "./events.ts";
