// The agents' certificate authority (docs/security.md, "Transport"). One per installation,
// in the `certificate_authority` table so every replica shares it: the first replica to
// start creates it (a conditional insert; a replica that loses the race reads the winner's
// row). Its private key is stored encrypted with AES-256-GCM under a key derived (HKDF-SHA256)
// from PALISADE_SECRET_KEY; it is decrypted into memory only, never logged or answered.
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  hkdfSync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from "node:crypto";
import { isIP } from "node:net";
import type { Db } from "../db/client.ts";
import { EC_ALG, fingerprintOfPem, HOST_URI_PREFIX, newPrivateKeyPem, webKeys, x509 } from "../../protocol/pki.ts";

export const MIN_SECRET_KEY_LENGTH = 32;

export class CaError extends Error {
  override name = "CaError";
  constructor(
    readonly code: "secret_key_missing" | "secret_key_wrong" | "invalid_csr" | "ca_corrupt",
    message: string,
  ) {
    super(message);
  }
}

const HKDF_INFO = "palisade certificate authority key v1";

function derive(secret: string, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, salt, HKDF_INFO, 32));
}

/**
 * `v2.<salt>.<iv>.<tag>.<ciphertext>`, each base64url. The associated data is the SHA-256 of
 * the CA certificate the key belongs to, so a key_encrypted copied beside another cert_pem
 * (someone with write access to the table) does not decrypt. `v1` (no associated data) is
 * still read, and ensureCa rewrites it as v2.
 */
export function encryptKey(pem: string, secret: string, certPem: string): string {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", derive(secret, salt), iv);
  c.setAAD(aadOf(certPem));
  const ct = Buffer.concat([c.update(pem, "utf8"), c.final()]);
  return ["v2", salt, iv, c.getAuthTag(), ct]
    .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
    .join(".");
}

const aadOf = (certPem: string) => Buffer.from(`palisade ca key for sha256:${fingerprintOfPem(certPem)}`);

export function decryptKey(stored: string, secret: string, certPem: string): string {
  const [v, salt, iv, tag, ct] = stored.split(".");
  if ((v !== "v1" && v !== "v2") || !salt || !iv || !tag || !ct)
    throw new CaError("secret_key_wrong", "the stored CA key is not in a format this version reads");
  try {
    const d = createDecipheriv(
      "aes-256-gcm",
      derive(secret, Buffer.from(salt, "base64url")),
      Buffer.from(iv, "base64url"),
    );
    if (v === "v2") d.setAAD(aadOf(certPem));
    d.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([d.update(Buffer.from(ct, "base64url")), d.final()]).toString("utf8");
  } catch {
    throw new CaError(
      "secret_key_wrong",
      "PALISADE_SECRET_KEY does not decrypt the CA key stored in the database (or the stored key belongs to another CA certificate): every replica must use the key the CA was created with (a new key needs a new CA: delete the certificate_authority row and re-enroll every agent)",
    );
  }
}

export function checkSecretKey(secret: string | undefined): string {
  if (!secret || secret.length < MIN_SECRET_KEY_LENGTH) {
    throw new CaError(
      "secret_key_missing",
      `the agent channel uses mutual TLS and its CA key is encrypted with PALISADE_SECRET_KEY (or the file named by PALISADE_SECRET_KEY_FILE), which is ${secret ? `only ${secret.length} characters; it must be at least ${MIN_SECRET_KEY_LENGTH}` : "not set"}. Generate one with \`openssl rand -base64 48\`, or set PALISADE_GRPC_PLAINTEXT=1 for a lab without TLS`,
    );
  }
  return secret;
}

const randomSerial = () => {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString("hex");
};

export interface IssuedCert {
  certPem: string;
  serial: string;
  notAfter: Date;
}

export class AgentCa {
  readonly fingerprint: string;
  private constructor(
    readonly certPem: string,
    private readonly key: KeyObject,
    private readonly cert: x509.X509Certificate,
  ) {
    this.fingerprint = fingerprintOfPem(certPem);
  }

  static async fromPem(certPem: string, keyPem: string): Promise<AgentCa> {
    return new AgentCa(certPem, createPrivateKey(keyPem), new x509.X509Certificate(certPem));
  }

  /** A new self-signed CA (10 years; only issues end-entity certificates). */
  static async create(): Promise<{ ca: AgentCa; keyPem: string }> {
    const keyPem = newPrivateKeyPem();
    const keys = await webKeys(createPrivateKey(keyPem));
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=Palisade agents CA ${randomBytes(4).toString("hex")}`,
      notBefore: new Date(now - 300_000),
      notAfter: new Date(now + 10 * 365 * 86_400_000),
      keys,
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return { ca: await AgentCa.fromPem(cert.toString("pem"), keyPem), keyPem };
  }

  private async issue(opts: {
    subject: string;
    publicKey: x509.PublicKey | CryptoKey;
    names: x509.JsonGeneralName[];
    usage: x509.ExtendedKeyUsage;
    notBefore: Date;
    notAfter: Date;
  }): Promise<IssuedCert> {
    const serial = randomSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: opts.subject,
      issuer: this.cert.subject,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      publicKey: opts.publicKey,
      signingKey: (await webKeys(this.key)).privateKey,
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([opts.usage], false),
        new x509.SubjectAlternativeNameExtension(opts.names, false),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert.publicKey),
      ],
    });
    return { certPem: cert.toString("pem"), serial, notAfter: opts.notAfter };
  }

  /** The replica's own server certificate for `names` (DNS names or IP addresses). */
  async issueServer(names: string[], days = 365): Promise<{ certPem: string; keyPem: string }> {
    const keyPem = newPrivateKeyPem();
    const keys = await webKeys(createPrivateKey(keyPem));
    const now = Date.now();
    const issued = await this.issue({
      subject: `CN=${names[0] ?? "palisade"}`.replace(/[,+="<>#;\\]/g, "_"),
      publicKey: keys.publicKey,
      names: names.map((n) => ({ type: isIP(n) ? "ip" : "dns", value: n })),
      usage: x509.ExtendedKeyUsage.serverAuth,
      notBefore: new Date(now - 300_000),
      notAfter: new Date(now + days * 86_400_000),
    });
    return { certPem: issued.certPem, keyPem };
  }

  /**
   * A client certificate for host `hostId` over the key in `csrPem`. The CSR's signature
   * proves the requester holds the key; everything else in it (names) is ignored: the
   * certificate names the host the API decided, nothing the agent asked for.
   */
  async issueClient(csrPem: string, hostId: string, ttlSeconds: number, now = Date.now()): Promise<IssuedCert> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (e) {
      throw new CaError("invalid_csr", `the certificate request is not a PEM PKCS#10 request: ${(e as Error).message}`);
    }
    const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
    if (alg.name !== "ECDSA" || alg.namedCurve !== "P-256")
      throw new CaError(
        "invalid_csr",
        `the certificate request's key is ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ""}; the agent must use ECDSA P-256`,
      );
    if (!(await csr.verify().catch(() => false)))
      throw new CaError(
        "invalid_csr",
        "the certificate request's signature does not verify (the requester does not hold its key)",
      );
    // Backdated a little for clock skew, but by at most a tenth of the lifetime so the
    // agent's renewal point (two thirds of notBefore..notAfter) stays after issuance.
    const skew = Math.min(300_000, (ttlSeconds * 1000) / 10);
    return this.issue({
      subject: `CN=${hostId}`,
      publicKey: csr.publicKey,
      names: [{ type: "url", value: `${HOST_URI_PREFIX}${hostId}` }],
      usage: x509.ExtendedKeyUsage.clientAuth,
      notBefore: new Date(now - skew),
      notAfter: new Date(now + ttlSeconds * 1000),
    });
  }
}

/**
 * The stored row, checked: the certificate is a CA certificate, the decrypted key is its
 * key, and the fingerprint column is the certificate's (tokens pin the certificate, so a
 * column that disagrees means the row was changed behind Palisade's back).
 */
function loadRow(
  row: { certPem: string; keyEncrypted: string; fingerprint: string },
  secretKey: string,
): { certPem: string; keyPem: string } {
  const keyPem = decryptKey(row.keyEncrypted, secretKey, row.certPem);
  const corrupt = (why: string) =>
    new CaError(
      "ca_corrupt",
      `the certificate_authority row is inconsistent: ${why}; restore it from a backup (or delete it and re-enroll every agent)`,
    );
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(row.certPem);
  } catch (e) {
    throw corrupt(`cert_pem is not a certificate (${(e as Error).message})`);
  }
  if (!cert.ca) throw corrupt("cert_pem is not a CA certificate");
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw corrupt("the decrypted key is not the key of cert_pem");
  if (fingerprintOfPem(row.certPem) !== row.fingerprint)
    throw corrupt("the fingerprint column is not cert_pem's SHA-256");
  return { certPem: row.certPem, keyPem };
}

/** The installation's CA: read from the database, or created there by the first replica. */
export async function ensureCa(db: Db, secretKey: string): Promise<AgentCa> {
  const found = await db.certificateAuthority.findUnique({ where: { id: 1 } });
  if (found) {
    const { certPem, keyPem } = loadRow(found, secretKey);
    // A key stored without associated data (v1) is rewritten with it, once, by whichever replica gets there.
    if (found.keyEncrypted.startsWith("v1.")) {
      await db.certificateAuthority.updateMany({
        where: { id: 1, keyEncrypted: found.keyEncrypted },
        data: { keyEncrypted: encryptKey(keyPem, secretKey, certPem) },
      });
    }
    return AgentCa.fromPem(certPem, keyPem);
  }
  const { ca, keyPem } = await AgentCa.create();
  await db.$executeRaw`
    INSERT INTO certificate_authority (id, cert_pem, key_encrypted, fingerprint)
    VALUES (1, ${ca.certPem}, ${encryptKey(keyPem, secretKey, ca.certPem)}, ${ca.fingerprint})
    ON CONFLICT (id) DO NOTHING`;
  const row = await db.certificateAuthority.findUniqueOrThrow({ where: { id: 1 } });
  const loaded = loadRow(row, secretKey);
  return AgentCa.fromPem(loaded.certPem, loaded.keyPem);
}

/**
 * The CA certificate's SHA-256 without its key (the enrollment-token route needs only
 * this), computed from the certificate: what a token pins is what the agent will compare.
 */
export async function caFingerprint(db: Db): Promise<string | undefined> {
  const row = await db.certificateAuthority.findUnique({ where: { id: 1 }, select: { certPem: true } });
  return row ? fingerprintOfPem(row.certPem) : undefined;
}
