// Named sets for the iptables target live in ipset: this renders `ipset restore` input
// that the agent loads (with `ipset restore -exist`) BEFORE iptables-restore, because a
// rule's `-m set --match-set` needs its set to exist. Sets are named pal_<name> so foreign
// sets are never touched. Static sets are flushed and refilled on every apply; dynamic sets
// (filled by the kernel at runtime) are only created and topped up, never flushed, so
// re-applying does not forget what they learned. Changing a set's type or options needs the
// agent to destroy it first (ipset cannot alter a set in place).
import { isIPv4, isIPv6 } from "../../net/ip-syntax.ts";
import type { Path } from "../../diagnostics.ts";
import { parsePrefix } from "../../net/address.ts";
import { parseTupleElement, tupleAddressText, tupleFields, type Policy, type SetDef } from "../../policy/index.ts";
import { cidr } from "./address.ts";
import type { IptCtx } from "./context.ts";
import { ipsetName } from "./names.ts";

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;

function element(e: string | number, set: SetDef, ctx: IptCtx, path: Path): string | undefined {
  const bad = () => {
    ctx.error(path, "iptables_set_element", `element ${JSON.stringify(e)} does not fit a set of type ${set.type}`);
    return undefined;
  };
  const text = String(e);
  switch (set.type) {
    case "ipv4_addr":
    case "ipv6_addr": {
      const want = set.type === "ipv4_addr" ? "ipv4" : "ipv6";
      const range = text.split("-");
      if (range.length === 2) {
        const ok = range.every((r) => (want === "ipv4" ? isIPv4(r) : isIPv6(r)));
        return ok ? text.toLowerCase() : bad();
      }
      const p = parsePrefix(text);
      return p && p.family === want ? cidr(p) : bad();
    }
    case "inet_service":
      return /^\d{1,5}(-\d{1,5})?$/.test(text) && text.split("-").every((x) => Number(x) <= 65535) ? text : bad();
    case "ether_addr":
      return MAC.test(text) ? text.toLowerCase() : bad();
    case "ipv4_addr,port":
    case "ipv6_addr,port": {
      const t = parseTupleElement(set.type, e, set.interval === true);
      if (!t.ok) return bad();
      const { address, protocol, ports } = t.element;
      return `${tupleAddressText(address)},${protocol}:${ports[0] === ports[1] ? ports[0] : `${ports[0]}-${ports[1]}`}`;
    }
    default:
      return bad();
  }
}

/** The ipset entries of a tuple set: one per port of each element's range. */
function tupleEntries(set: SetDef): number {
  let n = 0;
  for (const e of set.elements) {
    const t = parseTupleElement(set.type, e, set.interval === true);
    n += t.ok ? t.element.ports[1] - t.element.ports[0] + 1 : 1;
  }
  return n;
}

function createLine(name: string, set: SetDef): string | undefined {
  const opts: string[] = [];
  switch (set.type) {
    case "ipv4_addr":
      opts.push("hash:net family inet");
      break;
    case "ipv6_addr":
      opts.push("hash:net family inet6");
      break;
    case "inet_service":
      opts.push("bitmap:port range 0-65535");
      break;
    case "ether_addr":
      opts.push("hash:mac");
      break;
    case "ipv4_addr,port":
    case "ipv6_addr,port":
      // hash:net,port holds prefixes (and whole addresses); a port range is added port by port.
      opts.push(
        `${set.interval ? "hash:net,port" : "hash:ip,port"} family ${set.type === "ipv4_addr,port" ? "inet" : "inet6"}`,
      );
      break;
    default:
      return undefined; // refused by checkTargetSupport (object.setIfname / object.setMark)
  }
  if (set.type !== "inet_service") {
    // ipset adds a tuple's port range port by port: each port is an entry. The policy's size
    // counts its elements (as nft does: a range is one element), so an explicit size is
    // raised to the entries the ranges expand to: below that, ipset refuses the set's own
    // elements ("Hash is full"), which no size the policy validates can mean.
    const entries = tupleFields(set.type) ? tupleEntries(set) : set.elements.length;
    const size =
      set.size !== undefined ? Math.max(set.size, entries) : set.dynamic ? entries + 65536 : Math.max(65536, entries);
    opts.push(`maxelem ${size}`);
  }
  if (set.timeoutSeconds !== undefined) opts.push(`timeout ${set.timeoutSeconds}`);
  if (set.counters) opts.push("counters");
  return `create ${name} ${opts.join(" ")}`;
}

/** `ipset restore` text for the policy's sets, or "" when it has none ipset can hold. */
export function renderIpsets(policy: Policy, ctx: IptCtx): string {
  const lines: string[] = [];
  for (const [key, set] of Object.entries(policy.sets)) {
    const name = ipsetName(key);
    const create = createLine(name, set);
    if (!create) continue;
    lines.push(create);
    if (!set.dynamic) lines.push(`flush ${name}`);
    set.elements.forEach((e, i) => {
      const el = element(e, set, ctx, ["sets", key, "elements", i]);
      if (el !== undefined) lines.push(`add ${name} ${el}`);
    });
  }
  if (lines.length === 0) return "";
  return [
    "# Palisade sets for `ipset restore -exist`; load before iptables-restore. Generated; do not edit.",
    ...lines,
    "",
  ].join("\n");
}
