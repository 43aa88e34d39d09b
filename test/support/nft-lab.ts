// Helpers shared by the nftables compiler's kernel tests: render a policy document with
// the real compiler and load it into a lab namespace; read rule counters back.
import assert from "node:assert/strict";
import { Policy, type PolicyInput } from "../../src/engine/policy/index.ts";
import { renderNft, type CompileContext } from "../../src/engine/compile/nft/index.ts";
import type { NetnsLab } from "./netns.ts";

/** Render `doc` and apply it in `ns` (nft -c first, then nft -f); returns the text. */
export async function applyPolicy(
  lab: NetnsLab,
  ns: string,
  doc: PolicyInput,
  ctx: CompileContext = {},
): Promise<string> {
  const r = renderNft(Policy.parse(doc), ctx);
  assert.ok(r.ok, `render failed: ${JSON.stringify(!r.ok && r.errors, null, 1)}`);
  const check = await lab.nft(ns, ["-c", "-f", "-"], r.text, { allowFailure: true });
  assert.equal(check.code, 0, `nft -c: ${check.stderr}\n${r.text}`);
  await lab.nft(ns, ["-f", "-"], r.text);
  return r.text;
}

/** Packets/bytes of the rule with this exact comment in `chain` (summed over its family variants). */
export async function ruleCounter(
  lab: NetnsLab,
  ns: string,
  chain: string,
  comment: string,
): Promise<{ packets: number; bytes: number }> {
  const out = JSON.parse((await lab.nft(ns, ["-j", "list", "chain", "inet", "palisade", chain])).stdout) as {
    nftables: Record<string, unknown>[];
  };
  let packets = 0;
  let bytes = 0;
  let found = false;
  for (const item of out.nftables) {
    const rule = item.rule as { comment?: string; expr?: Record<string, unknown>[] } | undefined;
    if (!rule || rule.comment !== comment) continue;
    found = true;
    for (const e of rule.expr ?? []) {
      // `counter name "x"` appears as {"counter": "x"}: only anonymous counters hold numbers.
      const c = e.counter as { packets: number; bytes: number } | string | undefined;
      if (c && typeof c === "object") {
        packets += c.packets;
        bytes += c.bytes;
      }
    }
  }
  assert.ok(found, `no rule with comment ${JSON.stringify(comment)} in chain ${chain}`);
  return { packets, bytes };
}

export async function namedCounter(
  lab: NetnsLab,
  ns: string,
  name: string,
): Promise<{ packets: number; bytes: number }> {
  const out = JSON.parse((await lab.nft(ns, ["-j", "list", "counter", "inet", "palisade", name])).stdout) as {
    nftables: { counter?: { packets: number; bytes: number } }[];
  };
  const c = out.nftables.find((x) => x.counter)?.counter;
  assert.ok(c, `counter ${name} not found`);
  return { packets: c.packets, bytes: c.bytes };
}

export interface SetElementCount {
  key: string;
  packets: number;
  bytes: number;
}

/** Elements of a set with their per-element counters (`nft -j list set`). */
export async function setElements(lab: NetnsLab, ns: string, name: string): Promise<SetElementCount[]> {
  const out = JSON.parse((await lab.nft(ns, ["-j", "list", "set", "inet", "palisade", name])).stdout) as {
    nftables: { set?: { elem?: unknown[] } }[];
  };
  const set = out.nftables.find((x) => x.set)?.set;
  const result: SetElementCount[] = [];
  for (const e of set?.elem ?? []) {
    if (typeof e === "string") {
      result.push({ key: e, packets: 0, bytes: 0 });
      continue;
    }
    const inner = (e as { elem?: { val: string; counter?: { packets: number; bytes: number } } }).elem;
    if (inner) result.push({ key: inner.val, packets: inner.counter?.packets ?? 0, bytes: inner.counter?.bytes ?? 0 });
  }
  return result.sort((a, b) => a.key.localeCompare(b.key));
}

/** Elements of every set of the ban table in `ns` with the kernel's remaining ms ("expires"); none without the table. */
export async function banTimeouts(lab: NetnsLab, ns: string): Promise<Map<string, number>> {
  const r = await lab.nft(ns, ["list", "table", "inet", "palisade_bans"], undefined, { allowFailure: true });
  const out = new Map<string, number>();
  if (r.code !== 0) return out;
  const ms = (t: string) =>
    [...t.matchAll(/(\d+)(d|h|ms|m|s)/g)].reduce(
      (n, [, v, u]) => n + Number(v) * { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[u as "s"],
      0,
    );
  for (const m of r.stdout.matchAll(/([0-9a-f.:/]+) timeout \S+ expires (\S+?)(?=[,\s}])/g)) out.set(m[1]!, ms(m[2]!));
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
