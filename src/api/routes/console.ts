// The web console's files: built by `npm run build:console` (scripts/build-console.ts)
// into dist/console and served from here, so the console works without any CDN (an
// air-gapped network). Public: the files hold no data; every API call they make is
// authenticated by the session cookie.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { installRoot } from "../../runtime/install-root.ts";
import { ApiError } from "../errors.ts";

// Beside package.json wherever this module runs from (src/ under tsx, a dist/ bundle).
export const CONSOLE_DIST = join(installRoot(import.meta.url), "dist/console");

const TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  html: "text/html; charset=utf-8",
  map: "application/json",
};
// Everything from this origin only: no inline script, no third party.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async function asset(file: string): Promise<Buffer> {
  try {
    return await readFile(join(CONSOLE_DIST, file));
  } catch {
    throw new ApiError(
      404,
      "not_found",
      file === "index.html" ? "the web console is not built: run `npm run build:console`" : `no console file ${file}`,
    );
  }
}

export const consoleRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get("/", { config: { access: "public" }, schema: { hide: true } }, async (_req, reply) =>
    reply
      .type(TYPES.html!)
      .header("content-security-policy", CSP)
      .header("cache-control", "no-cache")
      .send(await asset("index.html")),
  );
  app.get(
    "/console/:file",
    {
      config: { access: "public" },
      schema: { hide: true, params: z.object({ file: z.string().regex(/^[a-z0-9-]+\.(js|css)(\.map)?$/) }) },
    },
    async (req, reply) => {
      const ext = req.params.file.split(".").pop()!;
      return reply
        .type(TYPES[ext]!)
        .header("cache-control", "no-cache")
        .header("x-content-type-options", "nosniff")
        .send(await asset(req.params.file));
    },
  );
};
