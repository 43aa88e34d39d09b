// Moving a host enrolled over plaintext to mutual TLS in place (docs/security.md,
// "Upgrading a host enrolled over plaintext"): a new key made here (it never leaves the
// host), a CSR, the Upgrade call on the legacy plaintext port authenticated by the bearer
// credential and the operator's single-use secret; the answer is checked against the CA pin
// the secret carries, the mutual TLS port is tried with it, and only then is anything
// written: tls.json first, credential.json second, both atomically. A crash between the two
// leaves tls.json beside a plaintext credential.json, which the next start records as mutual
// TLS (client.ts checkChannel); the API accepts the bearer until the first certificate
// connect, so every point of a failed or interrupted upgrade leaves a working agent. The
// firewall is never touched.
import * as grpc from "@grpc/grpc-js";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { AgentServiceClient, type UpgradeResponse } from "../protocol/agent.ts";
import { createCsr } from "../protocol/csr.ts";
import { fingerprintOfDer, newPrivateKeyPem, splitEnrollToken } from "../protocol/pin.ts";
import { AgentError, errorText } from "./errors.ts";
import type { Credential, StateDir, TlsMaterial } from "./state.ts";
import { checkIssued, clientCredentials, splitHostPort } from "./tls.ts";

export interface UpgradeOptions {
  /** The legacy plaintext address (the agent's --server). */
  server: string;
  /** TLS with the system's roots to the legacy port (a TLS-terminating proxy; --tls). */
  tls: boolean;
  state: StateDir;
  credential: Credential;
  /** `<secret>.<CA sha256>` as the API answered it. */
  secret: string;
  deadlineMs: number;
}

export interface UpgradedState {
  material: TlsMaterial;
  credential: Credential;
}

const fail = (message: string, cause?: unknown) =>
  new AgentError("upgrade_failed", message, cause === undefined ? undefined : { cause });

function callUpgrade(o: UpgradeOptions, req: { secret: string; csr: string }): Promise<UpgradeResponse> {
  const creds = o.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
  const c = new AgentServiceClient(o.server, creds, {});
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${o.credential.credential}`);
  md.set("palisade-host", o.credential.hostId);
  return new Promise<UpgradeResponse>((resolve, reject) =>
    c.Upgrade(req, md, { deadline: Date.now() + o.deadlineMs }, (e, r) =>
      e || !r ? reject(e ?? new Error("empty answer")) : resolve(r),
    ),
  )
    .catch((e: unknown) => {
      const err = e as grpc.ServiceError;
      const code = err?.metadata?.get("palisade-code")[0];
      throw fail(`the API refused the upgrade${code ? ` (${String(code)})` : ""}: ${err?.details ?? errorText(e)}`, e);
    })
    .finally(() => c.close());
}

/** The new certificate opens a channel to the mutual TLS port (TLS both ways), or nothing is stored. */
function probe(server: string, m: TlsMaterial, deadlineMs: number): Promise<void> {
  const c = new AgentServiceClient(server, clientCredentials(m), { "grpc.use_local_subchannel_pool": 1 });
  return new Promise<void>((resolve, reject) =>
    c.waitForReady(Date.now() + deadlineMs, (e) => (e ? reject(e) : resolve())),
  )
    .catch((e: unknown) => {
      throw fail(
        `the mutual TLS agent port ${server} does not accept the new certificate (${errorText(e)}); nothing was stored and the host stays on its bearer credential: check that this host reaches that port, then ask for a new upgrade secret`,
        e,
      );
    })
    .finally(() => c.close());
}

export async function upgradeToMutualTls(o: UpgradeOptions): Promise<UpgradedState> {
  const { secret, pin } = splitEnrollToken(o.secret);
  if (!pin)
    throw fail(
      "the upgrade secret carries no CA pin (<secret>.<64 hex>): use it exactly as POST /v1/hosts/:id/tls-upgrade answered it",
    );
  if (o.credential.channel === "mtls")
    throw fail(`host "${o.credential.hostName}" is on mutual TLS already; the upgrade secret is not needed`);
  const keyPem = newPrivateKeyPem();
  const csr = await createCsr(createPrivateKey(keyPem), o.credential.hostName);
  const res = await callUpgrade(o, { secret, csr });

  let ca: X509Certificate;
  try {
    ca = new X509Certificate(res.caCertificate);
  } catch (e) {
    throw fail(`the API answered a CA that is not a certificate: ${(e as Error).message}`, e);
  }
  const presented = fingerprintOfDer(ca.raw);
  if (presented !== pin)
    throw new AgentError(
      "ca_mismatch",
      `the API answered a CA with sha256 ${presented}, not the one the upgrade secret pins (${pin}); nothing was stored. Check --server, or someone is in between`,
    );
  checkIssued(res.certificate, keyPem, res.caCertificate);
  const { host } = splitHostPort(o.server);
  const port = res.agentPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw fail(`the API named no agent port (${port})`);
  const mtlsServer = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const material: TlsMaterial = {
    keyPem,
    certPem: res.certificate,
    caPem: res.caCertificate,
    server: mtlsServer,
    upgradedFrom: o.server,
  };
  await probe(mtlsServer, material, o.deadlineMs);
  // tls.json first: a crash before credential.json is written leaves an agent that starts on
  // mutual TLS (checkChannel records it), never one with a credential and no certificate.
  await o.state.writeTls(material);
  const credential: Credential = { ...o.credential, channel: "mtls" };
  await o.state.writeCredential(credential);
  return { material, credential };
}

/** The address to connect to: the upgrade's mutual TLS port while --server still names the legacy one. */
export function effectiveServer(server: string, m: TlsMaterial | undefined): string {
  return m?.server && m.upgradedFrom === server ? m.server : server;
}
