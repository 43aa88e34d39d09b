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
import type { Log } from "../log.ts";
import { AgentRpcError } from "./errors.ts";

export interface AgentIdentity {
  hostId: string;
  hostName: string;
  /** Mutual TLS: the serial of the certificate this stream authenticated with. */
  certSerial?: string;
}

function bearer(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get("authorization");
  if (values.length !== 1 || typeof values[0] !== "string") return undefined;
  return /^Bearer\s+(\S{1,512})\s*$/i.exec(values[0])?.[1];
}

export async function authenticateAgent(db: Db, metadata: grpc.Metadata): Promise<AgentIdentity> {
  const credential = bearer(metadata);
  if (!credential)
    throw new AgentRpcError(
      "unauthenticated",
      "missing agent credential (metadata authorization: Bearer <credential>)",
    );
  const host = await db.host.findUnique({
    where: { credentialHash: hashSecret(credential) },
    select: { id: true, name: true, disabled: true },
  });
  if (!host)
    throw new AgentRpcError("unauthenticated", "unknown agent credential; enroll again with a new enrollment token");
  return checkHost(host, metadata);
}

/** Serial numbers as hex without case or leading zeros (the CA writes 32 digits, TLS reports fewer). */
export const normaliseSerial = (s: string) => s.toLowerCase().replace(/^0+/, "");

export interface PeerIdentity extends AgentIdentity {
  /** The presented certificate is the host's current one, or the one its last renewal replaced. */
  presented: "current" | "previous";
  /** The presented certificate's serial (normalised): which certificate a stream runs on. */
  certSerial: string;
}

/**
 * mTLS: `peer` is what grpc-js reports for the connection, which it fills in only when
 * the TLS handshake verified the certificate against the CA (expired, not yet valid or
 * foreign certificates never get this far). Deleted and disabled hosts are refused here,
 * and so is every certificate of the host but the one on record (and the one its last
 * renewal replaced, until the new one is first seen): a copied or superseded tls.json
 * is refused even while it is still valid.
 */
export async function authenticatePeer(
  db: Db,
  peer: PeerCertificate | undefined,
  metadata: grpc.Metadata,
  log?: Log,
): Promise<PeerIdentity> {
  const hostId = hostIdOfSubjectAltName(peer?.subjectaltname);
  if (!hostId || !peer?.serialNumber)
    throw new AgentRpcError(
      "unauthenticated",
      "no verified client certificate naming a Palisade host on this connection; enroll with an enrollment token first",
    );
  const host = await db.host.findUnique({
    where: { id: hostId },
    select: { id: true, name: true, disabled: true, certSerial: true, certSerialPrev: true, credentialHash: true },
  });
  if (!host)
    throw new AgentRpcError(
      "host_deleted",
      `host ${hostId} was deleted; its certificate is refused. Enroll again with a new enrollment token`,
    );
  const serial = normaliseSerial(peer.serialNumber);
  const presented =
    host.certSerial && normaliseSerial(host.certSerial) === serial
      ? "current"
      : host.certSerialPrev && normaliseSerial(host.certSerialPrev) === serial
        ? "previous"
        : undefined;
  if (!presented) {
    throw new AgentRpcError(
      "certificate_superseded",
      `certificate ${serial} of host "${host.name}" is not the one on record (a renewal replaced it, or it is a copy); use the agent's current tls.json or enroll again with a new enrollment token`,
    );
  }
  const identity: PeerIdentity = { ...checkHost(host, metadata), presented, certSerial: serial };
  // The new certificate is in use: the one it replaced is dead from now on. So is the
  // bearer credential (a host upgraded from plaintext, or enrolled with mutual TLS): from
  // its first certificate connect on, a legacy plaintext port refuses it.
  if (presented === "current" && (host.certSerialPrev || host.credentialHash)) {
    await db.host.updateMany({
      where: { id: host.id, certSerial: host.certSerial },
      data: { certSerialPrev: null, credentialHash: null },
    });
    if (host.credentialHash)
      log?.info({ hostId: host.id, host: host.name }, "plaintext credential retired: the host is on mutual TLS");
  }
  return identity;
}

function checkHost(host: { id: string; name: string; disabled: boolean }, metadata: grpc.Metadata): AgentIdentity {
  if (host.disabled)
    throw new AgentRpcError(
      "host_disabled",
      `host "${host.name}" is disabled by an admin; its credential is refused until it is enabled again`,
    );
  for (const claim of metadata.get("palisade-host")) {
    if (claim !== host.id && claim !== host.name) {
      throw new AgentRpcError(
        "wrong_host",
        `this credential belongs to host "${host.name}"; it cannot speak for "${String(claim)}"`,
      );
    }
  }
  return { hostId: host.id, hostName: host.name };
}
