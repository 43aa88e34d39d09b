// Web console sessions. Signing in trades an API token for a random session id, sent
// back as an HttpOnly cookie; the session lives in Redis (shared by every replica) and
// names the token, so the token's role applies and revoking the token ends its sessions
// (auth.ts re-reads the token on every request). Each session has its own CSRF secret,
// which the console sends in a header on every write; a cross-site form can send the
// cookie (SameSite=Strict already stops that) but never the header.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Redis } from "ioredis";

export const SESSION_COOKIE = "palisade_session";
export const CSRF_HEADER = "x-csrf-token";
/** A session ends this long after sign-in, active or not. */
export const SESSION_TTL_SECONDS = 8 * 3600;
const KEY_PREFIX = "palisade:session:";

export interface Session {
  tokenId: string;
  csrf: string;
  expiresAt: string;
}

const keyOf = (sid: string) => KEY_PREFIX + createHash("sha256").update(sid).digest("hex");

export async function createSession(redis: Redis, tokenId: string): Promise<{ sid: string; session: Session }> {
  const sid = randomBytes(32).toString("base64url");
  const session: Session = {
    tokenId,
    csrf: randomBytes(24).toString("base64url"),
    expiresAt: new Date(Date.now() + SESSION_TTL_SECONDS * 1000).toISOString(),
  };
  await redis.set(keyOf(sid), JSON.stringify(session), "EX", SESSION_TTL_SECONDS);
  return { sid, session };
}

export async function loadSession(redis: Redis, sid: string): Promise<Session | undefined> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(sid)) return undefined;
  const text = await redis.get(keyOf(sid));
  return text ? (JSON.parse(text) as Session) : undefined;
}

export async function deleteSession(redis: Redis, sid: string): Promise<void> {
  await redis.del(keyOf(sid));
}

export function sessionIdOf(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === SESSION_COOKIE) return v.join("=");
  }
  return undefined;
}

export function csrfMatches(req: FastifyRequest, session: Session): boolean {
  const sent = req.headers[CSRF_HEADER];
  if (typeof sent !== "string" || sent.length !== session.csrf.length) return false;
  return timingSafeEqual(Buffer.from(sent), Buffer.from(session.csrf));
}

/** Secure when the client reached us over TLS (directly, or per the proxy's X-Forwarded-Proto). */
function overTls(req: FastifyRequest): boolean {
  return req.protocol === "https" || req.headers["x-forwarded-proto"] === "https";
}

export function setSessionCookie(req: FastifyRequest, reply: FastifyReply, sid: string, maxAgeSeconds: number): void {
  const attrs = [`${SESSION_COOKIE}=${sid}`, "Path=/", "HttpOnly", "SameSite=Strict", `Max-Age=${maxAgeSeconds}`];
  if (overTls(req)) attrs.push("Secure");
  reply.header("set-cookie", attrs.join("; "));
}
