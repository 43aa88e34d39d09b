// The failsafe context of a render (render.ts, in the render worker): the exact API
// endpoint this agent talks to, which the rules always keep open.

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Logger } from "../runtime/log.ts";
import { errorText } from "./errors.ts";
import type { ResolvedApi, StateDir } from "./state.ts";

/** HOST:PORT or [IPv6]:PORT -> the host (brackets dropped) and the port. */
function splitServer(server: string): { host: string; apiPort: number } {
  const i = server.lastIndexOf(":");
  return { host: server.slice(0, i).replace(/^\[|\]$/g, ""), apiPort: Number(server.slice(i + 1)) };
}

/** The API endpoint both failsafes keep open: every address its name resolves to, and its port. */
export interface ApiEndpoint {
  apiAddresses: string[];
  apiPort: number;
  /** Set when there are no addresses: the host name that neither resolved nor ever had. */
  unresolved?: string;
}

/** Where else the failsafe's addresses come from when the name does not resolve. */
export interface FailsafeSources {
  /** Remembers the last successful resolution (api-addresses.json). */
  state?: StateDir;
  /** The live gRPC stream's remote address (HOST:PORT), if the agent has one. */
  peer?: () => string | undefined;
}

const HOUR_MS = 3_600_000;

/** The peer's IP address; an IPv4-mapped IPv6 one as IPv4 (what the packets carry). */
function peerAddress(peer: string | undefined): string | undefined {
  if (!peer) return undefined;
  const ip = splitServer(peer).host.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
  return isIP(ip) ? ip : undefined;
}

/**
 * HOST:PORT -> the failsafe's endpoint, resolved again for every policy render and every full
 * ban update, plus the live stream's remote address. A successful lookup is remembered in the
 * state dir; when the name does not resolve the remembered addresses are used (warn line
 * naming them and when they were resolved). With neither, there are no addresses (never a
 * port-only rule, which any sender could match by picking its source port) and `unresolved`
 * names the host: renderDesired (render.ts) then refuses a policy that would need the rule. "No Confirm,
 * so it rolls back" is no answer: a policy that keeps established connections but blocks new
 * ones (or DNS) gets its Confirm and locks the agent out at its next reconnect.
 */
export async function failsafeContext(
  server: string,
  what: "policy" | "ban table",
  log?: Logger,
  from: FailsafeSources = {},
): Promise<ApiEndpoint> {
  const { host, apiPort } = splitServer(server);
  const peer = peerAddress(from.peer?.());
  const withPeer = (as: string[]) => (peer && !as.includes(peer) ? [...as, peer] : as);
  if (isIP(host)) return { apiAddresses: withPeer([host]), apiPort };
  let cached: ResolvedApi | undefined;
  try {
    cached = await from.state?.readResolvedApi();
  } catch (e) {
    log?.warn({ err: errorText(e) }, "the remembered API addresses are unreadable; ignoring them");
  }
  if (cached?.host !== host) cached = undefined; // remembered for another --server
  let addresses: string[];
  try {
    addresses = [...new Set((await lookup(host, { all: true })).map((a) => a.address))].sort();
  } catch (e) {
    const err = errorText(e);
    if (cached) {
      log?.warn(
        { server, err, addresses: cached.addresses, resolvedAt: cached.resolvedAt, peer },
        `API name does not resolve: the ${what}'s failsafe uses the addresses it last resolved to (at ${cached.resolvedAt})`,
      );
      return { apiAddresses: withPeer(cached.addresses), apiPort };
    }
    if (peer) {
      log?.warn(
        { server, err, peer },
        `API name does not resolve: the ${what}'s failsafe uses the live connection's address`,
      );
      return { apiAddresses: [peer], apiPort };
    }
    log?.warn(
      { server, err },
      `API name does not resolve and never did on this host: no failsafe address for the ${what}`,
    );
    return { apiAddresses: [], apiPort, unresolved: host };
  }
  const same = cached?.addresses.length === addresses.length && cached.addresses.every((a, i) => a === addresses[i]);
  if (from.state && !(same && Date.now() - Date.parse(cached!.resolvedAt) < HOUR_MS)) {
    await from.state
      .writeResolvedApi({ host, addresses, resolvedAt: new Date().toISOString() })
      .catch((e) => log?.warn({ err: errorText(e) }, "cannot remember the API's addresses"));
  }
  return { apiAddresses: withPeer(addresses), apiPort };
}
