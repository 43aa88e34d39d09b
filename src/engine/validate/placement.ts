// Where things may live (xtables-addons manual and the kernel's table/hook rules): which
// hooks a table has, which tables and hooks an action is allowed in. A user chain inherits
// the hooks of the chains that jump to it, so its rules are checked against all of them.
import { error, warning, type Diagnostic } from "../diagnostics.ts";
import { TABLE_HOOKS, type CHAIN_TABLES, type ActionType, type Policy } from "../policy/index.ts";
import { chainHooks, reachedFrom, rulesOf, sortedEntries, type Hook, type RuleRef } from "./model.ts";

type Table = (typeof CHAIN_TABLES)[number];

interface Rule_ {
  /** Tables the action may be used in. */
  tables: readonly Table[];
  /** Hooks the action may run at (all of the table's when absent). */
  hooks?: readonly Hook[];
  code: string;
  why: string;
}

const PLACEMENT: Partial<Record<ActionType, Rule_>> = {
  ipmark: { tables: ["mangle"], code: "mangle_only", why: "IPMARK is to be used inside the mangle table" },
  tos: { tables: ["mangle"], code: "mangle_only", why: "TOS can only be used in the mangle table" },
  ttl: {
    tables: ["mangle"],
    code: "mangle_only",
    why: "the TTL and HL targets can only be used in the mangle table (the kernel refuses them elsewhere)",
  },
  checksumFill: { tables: ["mangle"], code: "mangle_only", why: "CHECKSUM can only be used in the mangle table" },
  dhcpmac: {
    tables: ["mangle"],
    code: "mangle_only",
    why: "DHCPMAC rewrites DHCP messages and belongs in the mangle table",
  },
  rawsnat: {
    tables: ["raw", "rawpost"],
    code: "rawnat_table",
    why: "RAWSNAT/RAWDNAT must happen outside connection tracking, so only in the raw or rawpost tables",
  },
  rawdnat: {
    tables: ["raw", "rawpost"],
    code: "rawnat_table",
    why: "RAWSNAT/RAWDNAT must happen outside connection tracking, so only in the raw or rawpost tables",
  },
  notrack: {
    tables: ["raw"],
    hooks: ["prerouting", "output"],
    code: "notrack_raw_only",
    why: "NOTRACK must run before connection tracking, in raw prerouting or raw output",
  },
  ctHelper: {
    tables: ["raw"],
    hooks: ["prerouting", "output"],
    code: "ct_helper_raw_only",
    why: "CT --helper runs only in raw prerouting or raw output (or raw user chains reached only from those): iptables-restore gets EINVAL elsewhere",
  },
  snat: {
    tables: ["nat"],
    hooks: ["postrouting"],
    code: "snat_placement",
    why: "source NAT happens in nat postrouting (or a nat user chain reached only from there)",
  },
  masquerade: {
    tables: ["nat"],
    hooks: ["postrouting"],
    code: "snat_placement",
    why: "masquerading happens in nat postrouting (or a nat user chain reached only from there)",
  },
  dnat: {
    tables: ["nat"],
    hooks: ["prerouting", "output"],
    code: "dnat_placement",
    why: "destination NAT happens in nat prerouting or nat output (or nat user chains reached only from those)",
  },
  redirect: {
    tables: ["nat"],
    hooks: ["prerouting", "output"],
    code: "dnat_placement",
    why: "REDIRECT happens in nat prerouting or nat output (or nat user chains reached only from those)",
  },
  netmap: {
    tables: ["nat"],
    hooks: ["prerouting", "output", "postrouting"],
    code: "netmap_placement",
    why: "NETMAP maps the source in nat postrouting and the destination in nat prerouting/output",
  },
  tproxy: {
    tables: ["mangle"],
    hooks: ["prerouting"],
    code: "tproxy_placement",
    why: "TPROXY only runs in mangle prerouting (or mangle user chains reached only from there), as the kernel's xt_TPROXY and nft_tproxy allow",
  },
  reject: {
    tables: ["filter"],
    hooks: ["input", "forward", "output"],
    code: "reject_placement",
    why: "REJECT is only valid in filter input, forward and output (or filter user chains reached from them)",
  },
};

export function placementErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [name, chain] of sortedEntries(policy.chains)) {
    if (chain.hook && !TABLE_HOOKS[chain.table].includes(chain.hook)) {
      out.push(
        error(
          ["chains", name, "hook"],
          "invalid_hook_for_table",
          `table ${chain.table} has no ${chain.hook} hook; its hooks are ${TABLE_HOOKS[chain.table].join(", ")}`,
        ),
      );
    }
    if (chain.policy && !chain.hook) {
      out.push(
        error(
          ["chains", name, "policy"],
          "policy_on_user_chain",
          `only base chains (with a hook) have a default policy; a user chain returns to its caller when it ends`,
        ),
      );
    }
  }
  const hooks = chainHooks(policy);
  for (const r of rulesOf(policy)) out.push(...actionPlacement(r, hooks.get(r.chainName) ?? new Set()));
  return out;
}

function actionPlacement(r: RuleRef, hooks: Set<Hook>): Diagnostic[] {
  const at = [...r.path, "action"];
  const table = r.chain.table;
  const out: Diagnostic[] = [];
  const rule = PLACEMENT[r.action.type];
  if (rule) {
    if (!rule.tables.includes(table)) {
      out.push(error(at, rule.code, `${r.action.type} is not allowed in table ${table}: ${rule.why}`));
    } else if (rule.hooks) {
      const bad = [...hooks].filter((h) => !rule.hooks!.includes(h)).sort();
      if (bad.length > 0)
        out.push(
          error(
            at,
            rule.code,
            `${r.action.type} is not allowed at the ${bad.join("/")} hook${reachedFrom(r)}: ${rule.why}`,
          ),
        );
    }
  }
  if (r.action.type === "steal" && [...hooks].some((h) => h !== "output")) {
    out.push(
      warning(
        at,
        "steal_outside_output",
        `STEAL is meant for the output hook (it drops without the error DROP returns to local senders); elsewhere use drop`,
      ),
    );
  }
  if (r.action.type === "sysrq") {
    const p = r.match.protocol;
    if (p !== "udp")
      out.push(
        error(
          at,
          "sysrq_needs_udp",
          `SYSRQ requests arrive over UDP: add match protocol: udp (and restrict the source address and destination)`,
        ),
      );
    if (!r.match.saddr)
      out.push(
        warning(
          at,
          "sysrq_unrestricted",
          `SYSRQ lets the network reboot or power off this host; restrict it to a trusted source address (match saddr) and rate-limit it`,
        ),
      );
  }
  return out;
}
