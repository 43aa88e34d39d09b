// The policy schema as JSON Schema, for the OpenAPI document. Input side: fields with
// defaults are optional there, as a client may omit them.
import * as z from "zod";
import { Policy } from "./policy/index.ts";

let cached: object | undefined;

export function policyJsonSchema(): object {
  // Refinements (custom checks) have no JSON Schema form; they stay server-side.
  cached ??= z.toJSONSchema(Policy, { io: "input", unrepresentable: "any" }) as object;
  return structuredClone(cached);
}
