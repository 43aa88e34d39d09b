// Bearer-token auth. Secrets are random, shown once, and stored only as sha256 hex:
// they carry 256 bits of entropy, so a fast hash is enough (no password stretching).
// Every route declares its access level in `config.access`; routes that forget fail closed.
import { createHash, randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { Actor } from "./audit.ts";
import { CSRF_HEADER, csrfMatches, loadSession, sessionIdOf } from "./console/session.ts";
import { AuthThrottle } from "./auth-throttle.ts";
import { ApiError } from "./errors.ts";
import type { TokenRole } from "../generated/prisma/enums.ts";

export type Role = TokenRole;
export const ROLES = ["admin", "operator", "viewer"] as const satisfies readonly Role[];

/** public: anyone; read: any token; operate: admin or operator; admin: admin only. */
export type Access = "public" | "read" | "operate" | "admin";

const ALLOWED: Record<Exclude<Access, "public">, readonly Role[]> = {
  read: ["admin", "operator", "viewer"],
  operate: ["admin", "operator"],
  admin: ["admin"],
};

/** Whether `role` passes the `access` check (for answers that differ by role, not only routes). */
export const roleAllows = (role: Role, access: Exclude<Access, "public">): boolean => ALLOWED[access].includes(role);

export interface AuthenticatedActor extends Actor {
  tokenId: string;
  role: Role;
}

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
    /** A public route the general rate limit still counts, per client address (console sign-in). */
    limitByAddress?: boolean;
  }
  interface FastifyInstance {
    /** Failed authentications per client address (auth-throttle.ts), shared by every way in. */
    authThrottle: AuthThrottle;
  }
  interface FastifyRequest {
    /** Set by the auth hook on every non-public route. */
    actor: AuthenticatedActor;
  }
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** A new random secret with a recognisable prefix (helps secret scanners and humans). */
export function newSecret(prefix: "pal" | "palenroll" | "palupgrade"): string {
  return `${prefix}_${randomBytes(32).toString("base64url")}`;
}

export function bearerOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1] ?? "";
}

/** Don't write last_used_at on every request; once a minute per token is plenty. */
const LAST_USED_RESOLUTION_MS = 60_000;

export interface AuthPluginOptions {
  /** Failed authentications allowed per address and minute (then 429, see auth-throttle.ts). */
  failuresPerMinute: number;
  /** Redis key namespace of the counters. */
  namespace: string;
}

export const authPlugin = fp(async (app: FastifyInstance, opts: AuthPluginOptions) => {
  const throttle = new AuthThrottle(app.redis, opts.namespace, opts.failuresPerMinute);
  app.decorate("authThrottle", throttle);
  app.decorateRequest("actor", null as unknown as AuthenticatedActor);
  app.addHook("onRequest", async (req, reply) => {
    const access = req.routeOptions.config.access ?? "admin";
    if (access === "public") return;
    await throttle.check(req.ip);
    const secret = bearerOf(req);
    const sid = secret === undefined ? sessionIdOf(req) : undefined;
    if (sid !== undefined)
      return authenticateSession(app, req, sid, access).catch(async (err: unknown) => {
        // A made-up or expired session cookie counts like a made-up token.
        if (err instanceof ApiError && err.status === 401) await throttle.fail(req.ip);
        throw err;
      });
    if (secret === undefined) {
      await throttle.fail(req.ip);
      reply.header("www-authenticate", 'Bearer realm="palisade"');
      throw new ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)");
    }
    const token = secret ? await app.db.apiToken.findUnique({ where: { tokenHash: hashSecret(secret) } }) : null;
    if (!token || token.revokedAt) {
      await throttle.fail(req.ip);
      reply.header("www-authenticate", 'Bearer realm="palisade", error="invalid_token"');
      throw new ApiError(401, "unauthorized", "unknown or revoked token");
    }
    await admit(app, req, token, access);
  });
});

type TokenRow = { id: string; name: string; role: Role; revokedAt: Date | null; lastUsedAt: Date | null };

async function admit(
  app: FastifyInstance,
  req: FastifyRequest,
  token: TokenRow,
  access: Exclude<Access, "public">,
): Promise<void> {
  if (!ALLOWED[access].includes(token.role)) {
    throw new ApiError(
      403,
      "forbidden",
      `this needs the ${ALLOWED[access].join(" or ")} role; token "${token.name}" has ${token.role}`,
    );
  }
  req.actor = { name: token.name, tokenId: token.id, role: token.role };
  const now = new Date();
  if (!token.lastUsedAt || now.getTime() - token.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
    await app.db.apiToken.update({ where: { id: token.id }, data: { lastUsedAt: now } });
  }
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The web console's cookie (console/session.ts): the session's token must still be valid
 * (revoking it ends the session), and every write must carry the session's CSRF header.
 */
async function authenticateSession(
  app: FastifyInstance,
  req: FastifyRequest,
  sid: string,
  access: Exclude<Access, "public">,
): Promise<void> {
  const session = await loadSession(app.redis, sid);
  const token = session ? await app.db.apiToken.findUnique({ where: { id: session.tokenId } }) : null;
  if (!session || !token || token.revokedAt) {
    throw new ApiError(401, "unauthorized", "session expired or signed out (or its token was revoked); sign in again");
  }
  if (!SAFE_METHODS.has(req.method) && !csrfMatches(req, session)) {
    throw new ApiError(
      403,
      "forbidden",
      `a write with the session cookie needs the ${CSRF_HEADER} header of the session`,
    );
  }
  await admit(app, req, token, access);
}
