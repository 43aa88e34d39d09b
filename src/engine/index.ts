// Public surface of the engine. Everything outside src/engine imports from here only.
// policy document -> validate/lint -> compile (nftables | iptables) -> driver (kernel)
export type { Diagnostic, Severity } from "./diagnostics.ts";
