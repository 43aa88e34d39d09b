// Addresses a ban may never cover: the API's own (every address of this process's
// interfaces, loopback included) and every agent's management path (the address its stream
// last came from). Either would cut the hosts off the API that could lift the ban.
// The agent's ban chain also lets its API connection through first (engine/bans/table.ts).
import { networkInterfaces } from "node:os";
import { bans } from "../../engine/index.ts";
import type { Db } from "../db/client.ts";
import type { ErrorDetail } from "../errors.ts";

export function apiAddresses(extra: string[] = []): string[] {
  const out = new Set<string>(extra.filter((a) => a && a !== "0.0.0.0" && a !== "::"));
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) out.add(i.address.replace(/%.*$/, ""));
  return [...out];
}

/** A detail for every address that covers a protected one (nothing is applied when any does). */
export async function protectedAddressDetails(
  db: Db,
  entries: { path: string; address: bans.BanAddress }[],
  extra: string[] = [],
): Promise<ErrorDetail[]> {
  const api = apiAddresses(extra);
  const agents = await db.host.findMany({
    where: { agentAddress: { not: null } },
    select: { name: true, agentAddress: true },
  });
  const details: ErrorDetail[] = [];
  for (const e of entries) {
    const a = api.find((x) => bans.banCovers(e.address, x));
    if (a) {
      details.push({
        path: e.path,
        code: "covers_api_address",
        message: `${e.address.text} covers ${a}, an address of the Palisade API itself; agents could no longer reach it`,
      });
      continue;
    }
    const h = agents.find((x) => bans.banCovers(e.address, x.agentAddress!));
    if (h)
      details.push({
        path: e.path,
        code: "covers_agent_address",
        message: `${e.address.text} covers ${h.agentAddress}, where host "${h.name}"'s agent connects from; it would cut its management path`,
      });
  }
  return details;
}
