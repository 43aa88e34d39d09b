// Sign-in for the web console: an API token in, an HttpOnly session cookie out (see
// console/session.ts). The answer carries the role (the console shows only what the role
// may do; the API enforces it anyway) and the CSRF token the console sends on writes.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { hashSecret, ROLES } from "../auth.ts";
import {
  createSession,
  deleteSession,
  loadSession,
  SESSION_TTL_SECONDS,
  sessionIdOf,
  setSessionCookie,
} from "../console/session.ts";
import { ApiError, errorResponses } from "../errors.ts";
import { Timestamp } from "../schemas.ts";

const SessionView = z.object({
  name: z.string().describe("the API token's name"),
  role: z.enum(ROLES),
  csrfToken: z.string().describe("send as the x-csrf-token header on every write made with the session cookie"),
  expiresAt: Timestamp,
});
const SignIn = z.strictObject({ token: z.string().min(1).max(200).describe("an API token (pal_...)") });

export const consoleSessionRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    "/",
    {
      // Public (no token yet), but counted per client address by the general rate limit, and a
      // wrong token counts as a failed authentication of that address (429 before any lookup).
      config: { access: "public", limitByAddress: true },
      schema: {
        tags: ["console"],
        operationId: "signIn",
        summary: "Sign in to the web console with an API token",
        description:
          "Sets the `palisade_session` cookie (HttpOnly, SameSite=Strict, Secure over TLS). The session ends after 8 hours, on sign-out, or when the token is revoked.",
        security: [],
        body: SignIn,
        response: {
          200: SessionView.describe("Signed in: the token's name and role, and the session's CSRF token."),
          ...errorResponses(400, 401, 429),
        },
      },
    },
    async (req, reply) => {
      await app.authThrottle.check(req.ip);
      const token = await app.db.apiToken.findUnique({ where: { tokenHash: hashSecret(req.body.token) } });
      if (!token || token.revokedAt) {
        await app.authThrottle.fail(req.ip);
        throw new ApiError(401, "unauthorized", "unknown or revoked token");
      }
      const { sid, session } = await createSession(app.redis, token.id);
      setSessionCookie(req, reply, sid, SESSION_TTL_SECONDS);
      return { name: token.name, role: token.role, csrfToken: session.csrf, expiresAt: session.expiresAt };
    },
  );

  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["console"],
        operationId: "getSession",
        summary: "The signed-in console session",
        response: { 200: SessionView.describe("Who is signed in, with which role."), ...errorResponses(401) },
      },
    },
    async (req) => {
      const sid = sessionIdOf(req);
      const session = sid ? await loadSession(app.redis, sid) : undefined;
      if (!session) throw new ApiError(401, "unauthorized", "not signed in with a session cookie");
      return { name: req.actor.name, role: req.actor.role, csrfToken: session.csrf, expiresAt: session.expiresAt };
    },
  );

  app.delete(
    "/",
    {
      config: { access: "public" },
      schema: {
        tags: ["console"],
        operationId: "signOut",
        summary: "Sign out of the web console",
        security: [],
        response: { 204: z.undefined().describe("Signed out: the session is deleted and the cookie cleared.") },
      },
    },
    async (req, reply) => {
      const sid = sessionIdOf(req);
      if (sid) await deleteSession(app.redis, sid);
      setSessionCookie(req, reply, "", 0);
      return reply.status(204).send();
    },
  );
};
