// What a previous apply left in the kernel, read from `iptables-save` output, so the next
// render can delete Palisade chains the new policy no longer has and does not insert a
// second jump from a builtin chain. Only Palisade's own names are looked at.
import type { InstalledState, Table } from "./context.ts";
import { TABLES } from "./context.ts";
import { ENTRY_PREFIX, isPalisadeChain } from "./names.ts";

export function parseInstalled(saveText: string): InstalledState {
  const state: InstalledState = { chains: {}, jumps: {} };
  let table: Table | undefined;
  for (const raw of saveText.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) {
      const t = line.slice(1) as Table;
      table = (TABLES as readonly string[]).includes(t) ? t : undefined;
      continue;
    }
    if (!table) continue;
    const decl = /^:(\S+)\s/.exec(line);
    if (decl && isPalisadeChain(decl[1]!)) (state.chains[table] ??= []).push(decl[1]!);
    // The jump we insert: `-A INPUT -j PALISADE-INPUT`.
    const jump = /^-A ([A-Z]+) -j (\S+)$/.exec(line);
    if (jump && jump[2] === ENTRY_PREFIX + jump[1]) {
      const list = (state.jumps[table] ??= []);
      if (!list.includes(jump[1]!)) list.push(jump[1]!);
    }
  }
  return state;
}
