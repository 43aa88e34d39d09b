// `nft monitor trace` lines -> the rules one packet met and its verdict. Pure.
// Line shapes (nft 1.0.x): "trace id ID FAMILY TABLE CHAIN packet: <headers>",
// "... CHAIN rule <text> (verdict V)", "... CHAIN verdict V", "... CHAIN policy V".

export type TraceVerdict = "accept" | "drop" | "reject";

export interface TraceStep {
  table: string;
  chain: string;
  /** The rule text as nft prints it, or "policy" for a base chain's policy. */
  rule: string;
  verdict: string;
}

export interface PacketTrace {
  /** The packet spec as written. */
  packet: string;
  steps: TraceStep[];
  verdict: TraceVerdict;
  /** Destination address (and port) the packet had when the trace last printed it: shows DNAT. */
  finalDestination?: string;
}

export interface TraceLine {
  id: string;
  family: string;
  table: string;
  chain: string;
  kind: "packet" | "rule" | "verdict" | "policy";
  text: string;
  verdict?: string;
}

const LINE = /^trace id (\S+) (\S+) (\S+) (\S+) (packet: |rule |unknown rule |verdict |policy )(.*)$/;

export function parseTraceLine(line: string): TraceLine | undefined {
  const m = LINE.exec(line.trimEnd());
  if (!m) return undefined;
  // "unknown rule handle N": a rule added after nft monitor read the ruleset.
  const kind = m[5]!.replace(/[: ]+$/, "").replace(/^unknown /, "") as TraceLine["kind"];
  const rest = m[6]!.trim();
  const base = { id: m[1]!, family: m[2]!, table: m[3]!, chain: m[4]!, kind };
  if (kind === "rule") {
    const v = /^(.*) \(verdict ([^)]+)\)$/.exec(rest);
    return { ...base, text: v ? v[1]! : rest, ...(v ? { verdict: v[2]! } : {}) };
  }
  if (kind === "verdict" || kind === "policy") return { ...base, text: rest, verdict: rest.split(" ")[0]! };
  return { ...base, text: rest };
}

/**
 * Fold the lines of one trace id into steps and a verdict. Lines of `hiddenTable` (the
 * tracer's own table) are left out of the steps but their packet headers still count
 * for the final destination. Drop by a rule that rejects is "reject".
 */
export function summarizeTrace(packet: string, lines: TraceLine[], hiddenTable: string): PacketTrace {
  const steps: TraceStep[] = [];
  let verdict: TraceVerdict = "accept";
  let finalDestination: string | undefined;
  for (const l of lines) {
    if (l.kind === "packet") {
      const d = /ip6? daddr (\S+)/.exec(l.text);
      const p = /(?:tcp|udp) dport (\d+)/.exec(l.text);
      if (d) finalDestination = p ? (d[1]!.includes(":") ? `[${d[1]}]:${p[1]}` : `${d[1]}:${p[1]}`) : d[1];
      continue;
    }
    if (l.table === hiddenTable) continue;
    const v = l.verdict ?? "";
    // "verdict continue" lines (end of a regular chain) carry nothing for a reader.
    if (l.kind === "verdict" && v === "continue") continue;
    steps.push({
      table: l.table,
      chain: l.chain,
      rule: l.kind === "policy" ? "policy" : l.kind === "verdict" ? "(end of chain)" : l.text,
      verdict: v,
    });
    if (v === "drop") {
      verdict = /\breject\b/.test(l.text) ? "reject" : "drop";
      break;
    }
  }
  return { packet, steps, verdict, ...(finalDestination ? { finalDestination } : {}) };
}
