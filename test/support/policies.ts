// Small policy documents the API tests send. They only need to be valid (or not) for the
// engine; the engine's own tests cover what they mean.
export const validPolicy = (port = 22) => ({
  description: "test policy",
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [{ comment: `allow ${port}`, match: { protocol: "tcp", dport: port }, action: "accept" }],
    },
  },
});

/** Invalid in two independent places, so "every error" can be checked. */
export const invalidPolicy = () => ({
  chains: {
    input: { hook: "not-a-hook", rules: [] },
    output: { hook: "output", rules: [{ action: "teleport" }] },
  },
});
