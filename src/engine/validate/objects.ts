// Named objects: quota names (quota2 rules), set elements against the set type and size,
// and name clashes between meters, recent lists and sets (one kernel namespace in nft).
import { error, warning, type Diagnostic, type Path } from "../diagnostics.ts";
import { parsePrefix, zoneIdProblem } from "../net/address.ts";
import { Interface, NAME_RE, parseTupleElement, type Policy, type SetDef } from "../policy/index.ts";
import { rulesOf, sortedEntries } from "./model.ts";
import { prefixHostBitsProblem } from "./prefix.ts";

/** Element errors reported per set; a broken import can have millions. */
const MAX_ELEMENT_ERRORS = 20;

/** quota2's own rules first (the manual's), then the general identifier rule. */
export function quotaNameProblem(name: string, at: Path): Diagnostic | null {
  if (name === "") return error(at, "quota_name_empty", `a quota name must not be empty`);
  if (name.startsWith("."))
    return error(
      at,
      "quota_name_dot",
      `quota name ${JSON.stringify(name)} starts with a dot, which quota2 refuses (it names a file under /proc/net/xt_quota)`,
    );
  if (name.includes("/"))
    return error(
      at,
      "quota_name_slash",
      `quota name ${JSON.stringify(name)} contains a slash, which quota2 refuses (it names a file under /proc/net/xt_quota)`,
    );
  if (!NAME_RE.test(name))
    return error(
      at,
      "invalid_name",
      `quota name ${JSON.stringify(name)} must start with a letter and contain only letters, digits and '_' (at most 32 characters)`,
    );
  return null;
}

export function objectErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const name of Object.keys(policy.quotas).sort()) {
    const p = quotaNameProblem(name, ["quotas", name]);
    if (p) out.push(p);
  }
  for (const [name, set] of sortedEntries(policy.sets)) out.push(...setErrors(name, set));
  policy.failsafe.ports.forEach((port, i) => {
    if (port === 0)
      out.push(
        error(
          ["failsafe", "ports", i],
          "failsafe_port_invalid",
          `failsafe port 0 is not a port a connection can use; give the API's TCP port (1-65535)`,
        ),
      );
  });

  const meters = new Map<string, Path>();
  for (const r of rulesOf(policy)) {
    const m = r.match;
    if (m.quota) {
      const p = quotaNameProblem(m.quota.name, [...r.path, "match", "quota", "name"]);
      if (p) out.push(p);
    }
    if (m.meter) {
      const at = [...r.path, "match", "meter", "name"];
      if (Object.hasOwn(policy.sets, m.meter.name))
        out.push(
          error(
            at,
            "meter_name_conflict",
            `meter "${m.meter.name}" has the name of a declared set; meters are sets in the kernel, so give it its own name`,
          ),
        );
      if (!meters.has(m.meter.name)) meters.set(m.meter.name, at);
    }
  }
  for (const r of rulesOf(policy)) {
    const name = r.match.recent?.name;
    if (name && meters.has(name))
      out.push(
        error(
          [...r.path, "match", "recent", "name"],
          "meter_name_conflict",
          `recent list "${name}" has the name of a meter; both become kernel sets, so give them different names`,
        ),
      );
  }
  return out;
}

function setErrors(name: string, set: SetDef): Diagnostic[] {
  const out: Diagnostic[] = [];
  const base: Path = ["sets", name];
  let reported = 0;
  const seen = new Set<string>();
  for (let i = 0; i < set.elements.length && reported < MAX_ELEMENT_ERRORS; i++) {
    const el = set.elements[i]!;
    const problem = elementProblem(set, el);
    if (problem) {
      out.push(error([...base, "elements", i], problem.code, problem.message));
      reported++;
    } else {
      const key = String(el).toLowerCase();
      if (seen.has(key))
        out.push(
          warning(
            [...base, "elements", i],
            "set_duplicate_element",
            `${JSON.stringify(el)} is listed twice in set "${name}"`,
          ),
        ),
          reported++;
      seen.add(key);
    }
  }
  const capacity = set.size;
  if (capacity !== undefined && capacity < set.elements.length) {
    out.push(
      error(
        [...base, "size"],
        "set_too_small",
        `set "${name}" has ${set.elements.length} elements but size ${capacity}; the kernel would refuse the extra elements (with a misleading "Too many open files"); raise size to at least ${set.elements.length}${set.dynamic ? " plus room for the elements rules add" : ""}`,
      ),
    );
  }
  return out;
}

const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;

type ElementProblem = { code: string; message: string };

// Messages are built only when an element is wrong: sets can have a million elements.
function bad(set: SetDef, el: string | number, what: string): ElementProblem {
  return { code: "set_element_invalid", message: `${JSON.stringify(el)} is not ${what} (the set type is ${set.type})` };
}

function needsInterval(el: string | number, what: string): ElementProblem {
  return {
    code: "set_element_needs_interval",
    message: `${JSON.stringify(el)} is ${what}; add interval: true to the set to hold prefixes and ranges`,
  };
}

function addressElementProblem(set: SetDef, el: string | number): ElementProblem | null {
  const fam = set.type === "ipv4_addr" ? "ipv4" : "ipv6";
  if (typeof el !== "string") return bad(set, el, `an ${fam} address`);
  const max = fam === "ipv4" ? 32 : 128;
  const dash = el.indexOf("-");
  if (dash > 0) {
    const lo = parsePrefix(el.slice(0, dash));
    const hi = parsePrefix(el.slice(dash + 1));
    if (!lo || lo.family !== fam || !hi || hi.family !== fam || lo.length !== max || hi.length !== max) {
      const zone = zoneIdProblem(el);
      return zone ? { code: "set_element_invalid", message: zone } : bad(set, el, `an ${fam} address, prefix or range`);
    }
    return set.interval ? null : needsInterval(el, "a range");
  }
  const p = parsePrefix(el);
  if (!p || p.family !== fam) {
    const zone = zoneIdProblem(el);
    return zone ? { code: "set_element_invalid", message: zone } : bad(set, el, `an ${fam} address, prefix or range`);
  }
  if (p.length === max) return null; // the common case: one address
  const hb = prefixHostBitsProblem(el, p);
  if (hb) return { code: "address_host_bits", message: hb };
  return set.interval ? null : needsInterval(el, "a prefix");
}

function elementProblem(set: SetDef, el: string | number): ElementProblem | null {
  switch (set.type) {
    case "ipv4_addr":
    case "ipv6_addr":
      return addressElementProblem(set, el);
    case "inet_service": {
      if (typeof el === "number") return null;
      const m = /^(\d{1,5})-(\d{1,5})$/.exec(el);
      if (/^\d{1,5}$/.test(el) && Number(el) <= 65535) return null;
      if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) > 65535)
        return bad(set, el, "a port (0-65535) or a port range low-high");
      return set.interval ? null : needsInterval(el, "a port range");
    }
    case "ether_addr":
      return typeof el === "string" && MAC_RE.test(el) ? null : bad(set, el, "a MAC address aa:bb:cc:dd:ee:ff");
    case "ifname":
      return typeof el === "string" && Interface.safeParse(el).success ? null : bad(set, el, "an interface name");
    case "mark":
      if (typeof el === "number") return null;
      return /^(0x[0-9a-f]{1,8}|\d{1,10})$/i.test(el) && Number(el) <= 0xffffffff
        ? null
        : bad(set, el, "a 32-bit mark");
    case "ipv4_addr,port":
    case "ipv6_addr,port": {
      const t = parseTupleElement(set.type, el, set.interval === true);
      if (t.ok) return null;
      return { code: t.needsInterval ? "set_element_needs_interval" : "set_element_invalid", message: t.problem };
    }
  }
}
