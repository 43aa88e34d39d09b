// The agent's side of mutual TLS (docs/security.md, "Transport"): find the CA the
// enrollment token pins, build channel credentials from the state dir's tls.json, and
// check what the API hands back before storing it.
import * as grpc from "@grpc/grpc-js";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import * as tls from "node:tls";
import { fingerprintOfDer } from "../protocol/pin.ts";
import { AgentError } from "./errors.ts";
import type { TlsMaterial } from "./state.ts";

export function splitHostPort(server: string): { host: string; port: number } {
  const i = server.lastIndexOf(":");
  const host = server.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(server.slice(i + 1)) };
}

/**
 * Open a TLS connection to `server`, take the certificate chain it presents and return the
 * one certificate whose SHA-256 is `pin`, as PEM. Nothing is sent on this connection, so
 * trusting nothing yet is safe: the CA found here becomes the only root for everything
 * after it, and a server that cannot present it is refused.
 */
export async function fetchPinnedCa(server: string, pin: string, timeoutMs: number): Promise<string> {
  const { host, port } = splitHostPort(server);
  const chain = await new Promise<tls.DetailedPeerCertificate[]>((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
    });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    socket.once("secureConnect", () => {
      const certs: tls.DetailedPeerCertificate[] = [];
      let c: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      // The chain is circular at a self-signed root; bounded either way.
      while (c?.raw && certs.length < 10 && !certs.includes(c)) {
        certs.push(c);
        c = c.issuerCertificate;
      }
      clearTimeout(timer);
      socket.destroy();
      resolve(certs);
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(
        new AgentError("enroll_failed", `cannot open TLS to ${server} for enrollment: ${e.message}`, { cause: e }),
      );
    });
  });
  const match = chain.find((c) => fingerprintOfDer(c.raw) === pin);
  if (!match) {
    throw new AgentError(
      "ca_mismatch",
      `the server at ${server} did not present the CA this enrollment token pins (sha256 ${pin}); it presented ${chain.map((c) => fingerprintOfDer(c.raw)).join(", ") || "no certificate"}. Refusing to enroll: check --server/--enroll-server, or someone is in between`,
    );
  }
  return new X509Certificate(match.raw).toString();
}

/** Credentials for enrollment: the pinned CA as the only root, no client certificate yet. */
export function enrollCredentials(caPem: string): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(caPem));
}

/** Credentials for Connect and Renew: the CA as the only root, the host's key and certificate. */
export function clientCredentials(m: TlsMaterial): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(m.caPem), Buffer.from(m.keyPem), Buffer.from(m.certPem));
}

/** A certificate from the API is stored only if the CA issued it and it is for our key. */
export function checkIssued(certPem: string, keyPem: string, caPem: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new AgentError(
      "enroll_failed",
      `the API answered with something that is not a certificate: ${(e as Error).message}`,
    );
  }
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
    throw new AgentError("enroll_failed", "the certificate from the API is not signed by the pinned CA");
  const ours = createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "der" });
  if (!cert.publicKey.export({ type: "spki", format: "der" }).equals(ours))
    throw new AgentError(
      "enroll_failed",
      "the certificate from the API is for another key than the one this agent made",
    );
}

/** When to renew: two thirds into the certificate's validity. */
export function renewalTime(certPem: string): { at: number; notAfter: number } {
  const c = new X509Certificate(certPem);
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  return { at: from + ((to - from) * 2) / 3, notAfter: to };
}
