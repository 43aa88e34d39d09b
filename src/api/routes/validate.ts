// Validate and lint a policy without saving it. A policy with errors is still a
// successful request: 200 with valid=false and every diagnostic.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { errorResponses } from "../errors.ts";
import { ImportReport, PolicyRequest } from "../policy-input.ts";
import { DiagnosticSchema } from "../schemas.ts";

const ValidateQuery = z.strictObject({
  target: z.enum(["nftables", "iptables"]).optional().describe("also check that every feature renders for this target"),
});
const Result = z.object({
  valid: z.boolean(),
  errors: z.array(DiagnosticSchema),
  warnings: z.array(DiagnosticSchema),
  importReport: ImportReport.optional(),
});

export const validateRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    "/validate",
    {
      config: { access: "operate" },
      schema: {
        tags: ["rulesets"],
        operationId: "validatePolicy",
        summary: "Validate and lint a policy without saving it",
        querystring: ValidateQuery,
        body: PolicyRequest,
        response: {
          200: Result.describe("Whether the policy is valid, its lint warnings and (on request) its rendering."),
          ...errorResponses(400, 401, 403, 413, 422, 503),
        },
      },
    },
    async (req) => {
      const v = await app.cpu.run("validate", {
        input: req.body,
        ...(req.query.target && { target: req.query.target }),
      });
      return {
        valid: v.ok,
        errors: v.ok ? [] : v.errors,
        warnings: v.warnings,
        ...(v.importReport && { importReport: v.importReport }),
      };
    },
  );
};
