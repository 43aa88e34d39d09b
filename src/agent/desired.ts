// DesiredState -> nft text: validate the policy JSON with the engine's validator and
// render it with the engine's nft compiler, with the failsafe context set to the exact
// API endpoint this agent talks to (so the rules always keep that connection open).

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Logger } from "../runtime/log.ts";
import { compileNft, validatePolicy, type nft } from "../engine/index.ts";

/** `tables` = the compiled model of `text`, which the applier's carry fallback rebuilds. */
export type Rendered =
  | { ok: true; text: string; tables: nft.TableDefinition[] }
  | { ok: false; code: "invalid_policy" | "render_failed"; error: string };

/** HOST:PORT or [IPv6]:PORT -> the host (brackets dropped) and the port. */
function splitServer(server: string): { host: string; apiPort: number } {
  const i = server.lastIndexOf(":");
  return { host: server.slice(0, i).replace(/^\[|\]$/g, ""), apiPort: Number(server.slice(i + 1)) };
}

/** The API endpoint both failsafes keep open: every address its name resolves to, and its port. */
export interface ApiEndpoint {
  apiAddresses: string[];
  apiPort: number;
}

/**
 * HOST:PORT -> the failsafe's endpoint, resolved again for every policy render and every full
 * ban update. Unresolvable = no addresses, so no failsafe rule at all (never a port-only one,
 * which any sender could match by picking its source port), logged at warn naming `what` is
 * loaded without it: a policy that then cuts the agent off gets no Confirm and rolls back;
 * the API refuses bans covering its own address or the agent's.
 */
export async function failsafeContext(
  server: string,
  what: "policy" | "ban table",
  log?: Logger,
): Promise<ApiEndpoint> {
  const { host, apiPort } = splitServer(server);
  if (isIP(host)) return { apiAddresses: [host], apiPort };
  try {
    return { apiAddresses: (await lookup(host, { all: true })).map((a) => a.address), apiPort };
  } catch (e) {
    log?.warn(
      { server, err: (e as Error).message },
      `API name does not resolve: the ${what} is loaded without its failsafe rule`,
    );
    return { apiAddresses: [], apiPort };
  }
}

const summary = (ds: { path?: unknown; message: string }[]) =>
  ds
    .slice(0, 10)
    .map((d) => `${Array.isArray(d.path) && d.path.length ? d.path.join(".") + ": " : ""}${d.message}`)
    .join("; ");

export function renderDesired(policyJson: string, failsafe: ApiEndpoint): Rendered {
  let doc: unknown;
  try {
    doc = JSON.parse(policyJson);
  } catch (e) {
    return { ok: false, code: "invalid_policy", error: `policy is not JSON: ${(e as Error).message}` };
  }
  const v = validatePolicy(doc, { target: "nftables" });
  if (!v.ok || !v.policy) return { ok: false, code: "invalid_policy", error: `invalid policy: ${summary(v.errors)}` };
  const r = compileNft(v.policy, { failsafe });
  if (!r.ok) return { ok: false, code: "render_failed", error: `cannot render for nftables: ${summary(r.errors)}` };
  return { ok: true, text: r.text, tables: r.tables };
}
