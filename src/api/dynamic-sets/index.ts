// The kernels' dynamic sets (docs/dynamic-sets.md): reading and lifting over the agent's
// stream, and fleet bans from shared port-scan trap hits.
export {
  AgentAsker,
  isAgentTimeout,
  replyChannel,
  Reply,
  DYNAMIC_SETS_CAPABILITY,
  ASK_TIMEOUT_MS,
  READ_CACHE_MS,
  READ_GAP_MS,
  READ_QUEUE_MAX,
  type DynamicSetsQuestion,
} from "./ask.ts";
export { shareTrapHits, sharingHosts, TRAP_BANS_PER_MINUTE, type TrapShareOutcome } from "./trap-share.ts";
