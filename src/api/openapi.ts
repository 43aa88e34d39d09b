// The OpenAPI document is generated from the routes' zod schemas; only the policy
// document's schema comes from the engine (its own JSON Schema), spliced in as
// components.schemas.Policy wherever a route uses the PolicyDocument placeholder.
import { z } from "zod";
import type { JSONSchema } from "zod/v4/core";
import { policyJsonSchema } from "../engine/index.ts";

/** Placeholder for "a policy document" in route schemas; validated by the engine, not zod. */
export const PolicyDocument = z.record(z.string(), z.unknown()).describe("A policy document (see the Policy schema).");
z.globalRegistry.add(PolicyDocument, { id: "Policy" });

/** Rewrites "#/$defs/X" refs of a standalone JSON Schema so they resolve inside the OpenAPI document. */
function rebase(node: unknown, base: string): unknown {
  if (Array.isArray(node)) return node.map((n) => rebase(n, base));
  if (node && typeof node === "object") {
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) => [
        k,
        k === "$ref" && typeof v === "string" && v.startsWith("#/") ? `${base}/${v.slice(2)}` : rebase(v, base),
      ]),
    );
  }
  return node;
}

let policySchema: Record<string, unknown> | undefined;
function policyComponent(): Record<string, unknown> {
  policySchema ??= rebase(policyJsonSchema(), "#/components/schemas/Policy") as Record<string, unknown>;
  const { $schema: _ignored, ...rest } = policySchema;
  return rest;
}

export const zodToJsonConfig = {
  target: "draft-2020-12" as const,
  override(ctx: { zodSchema: unknown; jsonSchema: JSONSchema.BaseSchema }) {
    if (ctx.zodSchema !== PolicyDocument) return;
    for (const k of Object.keys(ctx.jsonSchema)) delete (ctx.jsonSchema as Record<string, unknown>)[k];
    Object.assign(ctx.jsonSchema, policyComponent());
  },
};

export function openApiDocument() {
  return {
    openapi: "3.1.0",
    info: {
      title: "Palisade API",
      version: "1",
      description:
        "Central firewall manager: versioned rulesets, hosts running the Palisade agent, deployments, accounting.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    // Relative: the document is served by the API it describes, wherever that is.
    servers: [{ url: "/", description: "the Palisade API serving this document" }],
    components: {
      securitySchemes: {
        bearer: { type: "http" as const, scheme: "bearer" },
        metricsToken: {
          type: "http" as const,
          scheme: "bearer",
          description: "PALISADE_METRICS_TOKEN, when the server has one (GET /metrics only)",
        },
      },
    },
    security: [{ bearer: [] }],
  };
}
