// Kernel features a policy can need that a running kernel may lack (a module not built:
// CONFIG_NFT_QUEUE=n here). The names are the driver's probe names (driver/capabilities.ts),
// which the agent reports in its Hello's capability features when the probe passes. Both
// ends use this table: the API refuses to deploy a version that needs a feature to a host
// whose agent did not report it, and the driver names the feature when the kernel refuses
// a rule at a statement of it (nft's bare "No such file or directory" says neither).
// The deploy gate needs only the probe (a kernel without the module fails it). The driver's
// naming of a refusal needs the caret's column too, so `statement` is set only where that
// was measured: for queue (a kernel without CONFIG_NFT_QUEUE). tproxy and socket are gated
// but not named by the driver: on the kernels here both are built in (CONFIG_NFT_TPROXY=y,
// CONFIG_NFT_SOCKET=y), so where nft puts its caret when they are missing was not seen, and
// such a refusal stays nft_rejected with nft's own message.

export interface KernelFeature {
  /** What the operator is missing, for messages. */
  what: string;
  /**
   * The rendered statement's keyword, where nft's error caret points (column of the location),
   * when measured on a kernel without the feature; absent: the driver does not name it.
   */
  statement?: RegExp;
  /** The policy's actions that render a statement of the feature. */
  actions: readonly string[];
  /** The policy's match keys (rule.match.KEY) that render an expression of the feature. */
  matches: readonly string[];
  /** What to do about it. */
  remedy: string;
}

export const KERNEL_FEATURES = {
  queue: {
    what: "nftables queue support (NFQUEUE: the nft_queue module, CONFIG_NFT_QUEUE)",
    statement: /^queue\b/,
    actions: ["queue"],
    matches: [],
    remedy:
      "load the nft_queue module on the host (modprobe nft_queue), or run a kernel built with CONFIG_NFT_QUEUE, or use another action than queue",
  },
  // OpenWrt ships these as separate packages (kmod-nft-tproxy, kmod-nft-socket).
  socket: {
    what: "nftables socket matching (the nft_socket module, CONFIG_NFT_SOCKET)",
    actions: [],
    matches: ["socket"],
    remedy:
      "load the nft_socket module on the host (modprobe nft_socket; OpenWrt: the kmod-nft-socket package), or run a kernel built with CONFIG_NFT_SOCKET, or drop the socket match",
  },
  tproxy: {
    what: "nftables transparent proxying (the nft_tproxy module, CONFIG_NFT_TPROXY)",
    actions: ["tproxy"],
    matches: [],
    remedy:
      "load the nft_tproxy module on the host (modprobe nft_tproxy; OpenWrt: the kmod-nft-tproxy package), or run a kernel built with CONFIG_NFT_TPROXY, or use another action than tproxy",
  },
} as const satisfies Record<string, KernelFeature>;

export type KernelFeatureName = keyof typeof KERNEL_FEATURES;

/**
 * The feature whose statement starts at `column` (1-based, as nft reports it) of `line`,
 * when the kernel answered "No such file or directory" there: the kernel has no such
 * expression (its module is missing). Undefined for any other refusal.
 */
export function missingFeatureAt(kernelMessage: string, line: string, column: number): KernelFeatureName | undefined {
  if (!/No such file or directory/.test(kernelMessage)) return undefined;
  const at = line.slice(Math.max(0, column - 1));
  for (const [name, f] of Object.entries(KERNEL_FEATURES) as [KernelFeatureName, KernelFeature][]) {
    if (f.statement?.test(at)) return name;
  }
  return undefined;
}
