// Kernel features a policy can need that a running kernel may lack (a module not built:
// CONFIG_NFT_QUEUE=n here). The names are the driver's probe names (driver/capabilities.ts),
// which the agent reports in its Hello's capability features when the probe passes. Both
// ends use this table: the API refuses to deploy a version that needs a feature to a host
// whose agent did not report it, and the driver names the feature when the kernel refuses
// a rule at a statement of it (nft's bare "No such file or directory" says neither).
// Only features measured both ways belong here: the probe fails on a kernel without them,
// and nft points its error at the statement's keyword.

export interface KernelFeature {
  /** What the operator is missing, for messages. */
  what: string;
  /** The rendered statement's keyword, where nft's error caret points (column of the location). */
  statement: RegExp;
  /** The policy's actions that render that statement. */
  actions: readonly string[];
  /** What to do about it. */
  remedy: string;
}

export const KERNEL_FEATURES = {
  queue: {
    what: "nftables queue support (NFQUEUE: the nft_queue module, CONFIG_NFT_QUEUE)",
    statement: /^queue\b/,
    actions: ["queue"],
    remedy:
      "load the nft_queue module on the host (modprobe nft_queue), or run a kernel built with CONFIG_NFT_QUEUE, or use another action than queue",
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
    if (f.statement.test(at)) return name;
  }
  return undefined;
}
