// Reflection is refused always (seed: mirror-target): sending a packet back where it came
// from makes loops between two reflecting hosts and turns the host into a DoS amplifier.
import { error, type Diagnostic } from "../diagnostics.ts";
import { addressNotAfter } from "../net/address.ts";
import { unwrap, type Policy } from "../policy/index.ts";
import { asList, rulesOf, type RuleRef } from "./model.ts";
import { singleHost } from "./prefix.ts";

const WHY =
  "reflecting packets back to their sender causes loops between reflecting hosts (a TTL-255 packet bounces up to 255 times) and serious denial of service; MIRROR was removed from Linux 2.5/2.6 for this reason";

export function safetyErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const r of rulesOf(policy)) {
    const at = [...r.path, "action"];
    const a = r.action;
    if (a.type === "mirror") out.push(error(at, "mirror_refused", `MIRROR is refused: ${WHY}`));
    else if (a.type === "echo")
      out.push(
        error(
          at,
          "reflection_refused",
          `ECHO sends every packet back to its sender, which is MIRROR by another name; refused: ${WHY}`,
        ),
      );
    else if (a.type === "dnat" && natReaches(a.to, matchedHosts(r, "saddr"))) {
      out.push(
        error(
          [...at, "to", "address"],
          "reflection_refused",
          `DNAT to ${natTarget(a.to)}, ${a.to.addressLast ? "a range holding " : ""}the rule's own matched source, sends the traffic back to its sender; refused: ${WHY}`,
        ),
      );
    } else if (a.type === "snat" && natReaches(a.to, matchedHosts(r, "daddr"))) {
      out.push(
        error(
          [...at, "to", "address"],
          "reflection_refused",
          `SNAT to ${natTarget(a.to)}, ${a.to.addressLast ? "a range holding " : ""}the rule's own matched destination, makes the destination answer itself; refused: ${WHY}`,
        ),
      );
    } else if (a.type === "tee" && matchedHosts(r, "saddr").has(host(a.gateway))) {
      out.push(
        error(
          [...at, "gateway"],
          "reflection_refused",
          `TEE to ${a.gateway}, the rule's own matched source, clones the traffic back to its sender; refused: ${WHY}`,
        ),
      );
    } else if (a.type === "rawdnat" && singleHost(a.to) && matchedHosts(r, "saddr").has(singleHost(a.to)!)) {
      out.push(
        error(
          [...at, "to"],
          "reflection_refused",
          `RAWDNAT to ${a.to}, the rule's own matched source, sends the traffic back to its sender; refused: ${WHY}`,
        ),
      );
    }
  }
  policy.forwarding.markForwards.forEach((f, i) => {
    const sources = hostsOf(f.match.saddr);
    f.backends.forEach((b, j) => {
      if (sources.has(host(b.address))) {
        out.push(
          error(
            ["forwarding", "markForwards", i, "backends", j, "address"],
            "reflection_refused",
            `backend ${b.address} is also the marked traffic's source: the forward would send traffic back to its sender; refused: ${WHY}`,
          ),
        );
      }
    });
  });
  return out;
}

/** Whether a NAT target (one address, or the range address..addressLast) holds one of `hosts`. */
function natReaches(
  to: { address?: string | undefined; addressLast?: string | undefined },
  hosts: Set<string>,
): boolean {
  if (to.address === undefined) return false;
  if (to.addressLast === undefined) return hosts.has(host(to.address));
  const { address: first, addressLast: last } = to;
  return [...hosts].some((h) => addressNotAfter(first, h) && addressNotAfter(h, last));
}

function natTarget(to: { address?: string | undefined; addressLast?: string | undefined }): string {
  return to.addressLast === undefined ? `${to.address}` : `${to.address}-${to.addressLast}`;
}

function host(address: string): string {
  return singleHost(address) ?? address;
}

function matchedHosts(r: RuleRef, key: "saddr" | "daddr"): Set<string> {
  return hostsOf(r.match[key]);
}

/** Single hosts a (non-negated) address match names. */
function hostsOf(m: RuleRef["match"]["saddr"]): Set<string> {
  const out = new Set<string>();
  if (m === undefined) return out;
  const { value, negated } = unwrap(m);
  if (negated) return out;
  for (const item of asList(value)) {
    const h = singleHost(item);
    if (h) out.add(h);
  }
  return out;
}
