// Who is on the other end of a Connect stream: the host whose credential hash matches the
// bearer credential, and nothing else. An agent may also state which host it believes it
// is (`palisade-host` metadata, id or name); a statement that disagrees with the
// credential is refused rather than ignored, so a misconfigured agent is loud.
// With mutual TLS the host is the one the verified client certificate names (its URI SAN);
// the bearer credential plays no part.
import type * as grpc from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import { hostIdOfSubjectAltName } from "../../protocol/pin.ts";
import { hashSecret } from "../auth.ts";
import type { Db } from "../db/client.ts";
import { AgentRpcError } from "./errors.ts";

export interface AgentIdentity {
  hostId: string;
  hostName: string;
}

function bearer(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get("authorization");
  if (values.length !== 1 || typeof values[0] !== "string") return undefined;
  return /^Bearer\s+(\S{1,512})\s*$/i.exec(values[0])?.[1];
}

export async function authenticateAgent(db: Db, metadata: grpc.Metadata): Promise<AgentIdentity> {
  const credential = bearer(metadata);
  if (!credential) throw new AgentRpcError("unauthenticated", "missing agent credential (metadata authorization: Bearer <credential>)");
  const host = await db.host.findUnique({ where: { credentialHash: hashSecret(credential) }, select: { id: true, name: true, disabled: true } });
  if (!host) throw new AgentRpcError("unauthenticated", "unknown agent credential; enroll again with a new enrollment token");
  return checkHost(host, metadata);
}

/**
 * mTLS: `peer` is what grpc-js reports for the connection, which it fills in only when
 * the TLS handshake verified the certificate against the CA (expired, not yet valid or
 * foreign certificates never get this far). Deleted and disabled hosts are refused here.
 */
export async function authenticatePeer(db: Db, peer: PeerCertificate | undefined, metadata: grpc.Metadata): Promise<AgentIdentity> {
  const hostId = hostIdOfSubjectAltName(peer?.subjectaltname);
  if (!hostId) throw new AgentRpcError("unauthenticated", "no verified client certificate naming a Palisade host on this connection; enroll with an enrollment token first");
  const host = await db.host.findUnique({ where: { id: hostId }, select: { id: true, name: true, disabled: true } });
  if (!host) throw new AgentRpcError("host_deleted", `host ${hostId} was deleted; its certificate is refused. Enroll again with a new enrollment token`);
  return checkHost(host, metadata);
}

function checkHost(host: { id: string; name: string; disabled: boolean }, metadata: grpc.Metadata): AgentIdentity {
  if (host.disabled) throw new AgentRpcError("host_disabled", `host "${host.name}" is disabled by an admin; its credential is refused until it is enabled again`);
  for (const claim of metadata.get("palisade-host")) {
    if (claim !== host.id && claim !== host.name) {
      throw new AgentRpcError("wrong_host", `this credential belongs to host "${host.name}"; it cannot speak for "${String(claim)}"`);
    }
  }
  return { hostId: host.id, hostName: host.name };
}
