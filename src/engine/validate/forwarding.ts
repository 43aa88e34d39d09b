// Port forwards (PORTFW, AUTOFW -h) and mark-based forwards (FWMARK/mfw).
import { error, type Diagnostic, type Path } from "../diagnostics.ts";
import { parsePrefix } from "../net/address.ts";
import { unwrap, type Policy } from "../policy/index.ts";
import { asList } from "./model.ts";

export function forwardingErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const f = policy.forwarding;
  const listeners = new Map<string, number>();
  f.portForwards.forEach((pf, i) => {
    const at: Path = ["forwarding", "portForwards", i];
    const key = `${pf.protocol} ${pf.address ?? "*"} ${pf.port} ${pf.iif ?? "*"}`;
    const prev = listeners.get(key);
    if (prev !== undefined)
      out.push(
        error(
          [...at, "port"],
          "duplicate_port_forward",
          `${pf.protocol} port ${pf.port} is already forwarded by portForwards/${prev}; merge the backends into one forward`,
        ),
      );
    else listeners.set(key, i);
    const family = pf.address ? parsePrefix(pf.address)?.family : undefined;
    backendFamilies(
      pf.backends.map((b) => b.address),
      family,
      at,
      out,
    );
  });
  f.rangeForwards.forEach((rf, i) => {
    const [lo, hi] = rf.ports.split("-").map(Number) as [number, number];
    if (lo > hi || hi > 65535)
      out.push(
        error(
          ["forwarding", "rangeForwards", i, "ports"],
          "invalid_range",
          `port range ${rf.ports} must be low-high with low <= high <= 65535`,
        ),
      );
  });
  const marks = new Map<number, number>();
  f.markForwards.forEach((mf, i) => {
    const at: Path = ["forwarding", "markForwards", i];
    const prev = marks.get(mf.mark);
    if (prev !== undefined)
      out.push(
        error(
          [...at, "mark"],
          "duplicate_mark_forward",
          `mark ${mf.mark} is already forwarded by markForwards/${prev}; one mark has one backend list`,
        ),
      );
    else marks.set(mf.mark, i);
    if (mf.active >= mf.backends.length) {
      out.push(
        error(
          [...at, "active"],
          "active_backend_out_of_range",
          `active is ${mf.active} but there ${mf.backends.length === 1 ? "is 1 backend" : `are ${mf.backends.length} backends`} (numbered from 0)`,
        ),
      );
    }
    const fams = new Set<string>();
    if (mf.match.family) fams.add(mf.match.family);
    for (const key of ["saddr", "daddr"] as const) {
      const v = mf.match[key];
      if (v === undefined) continue;
      for (const item of asList(unwrap(v).value)) {
        const p = parsePrefix(item);
        if (p) fams.add(p.family);
      }
    }
    backendFamilies(
      mf.backends.map((b) => b.address),
      fams.size === 1 ? ([...fams][0] as "ipv4" | "ipv6") : undefined,
      at,
      out,
    );
  });
  return out;
}

/** Backends of one forward share one family, and the family of the traffic they receive. */
function backendFamilies(addresses: string[], family: "ipv4" | "ipv6" | undefined, at: Path, out: Diagnostic[]): void {
  let expected = family;
  addresses.forEach((address, j) => {
    const fam = parsePrefix(address)?.family;
    if (!fam) return;
    if (expected === undefined) expected = fam;
    else if (fam !== expected) {
      out.push(
        error(
          [...at, "backends", j, "address"],
          "backend_family_mismatch",
          `backend ${address} is ${fam} but the forwarded traffic is ${expected}; NAT cannot translate between IPv4 and IPv6`,
        ),
      );
    }
  });
}
