// POST /v1/rulesets/:name/versions/:v/trace: what-if traces of a stored version, answered
// by the server's own kernel in a throwaway network namespace (docs/trace.md). One trace
// at a time per server (each makes namespaces and runs nft/scapy); the work is child
// processes, so the event loop only waits. Without CAP_NET_ADMIN: 503 not_capable.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import {
  driver,
  NftError,
  parsePacketSpec,
  PacketSpecError,
  type PacketSpec,
  type PacketTrace,
} from "../../engine/index.ts";
import { ApiError, errorResponses, notFound } from "../errors.ts";
import { toDetails } from "../policy-input.ts";
import { Name } from "../schemas.ts";

const Params = z.strictObject({ name: Name, v: z.coerce.number().int().min(1).max(2_147_483_647) });
const Body = z.strictObject({
  packets: z
    .array(z.string().min(1).max(300))
    .min(1)
    .max(20)
    .describe('packet specs in order, e.g. "tcp 203.0.113.5:40000 -> 198.51.100.1:22 flags S iif wan0"'),
  count: z
    .number()
    .int()
    .min(1)
    .max(200)
    .default(1)
    .describe("repetitions as new connections on the same ruleset (distributions)"),
});
const Step = z.object({ table: z.string(), chain: z.string(), rule: z.string(), verdict: z.string() });
const Verdict = z.enum(["accept", "drop", "reject"]);
const Trace = z.object({
  packet: z.string(),
  verdict: Verdict,
  finalDestination: z.string().optional(),
  rules: z.array(Step),
});
const Result = z.object({
  verdict: Verdict.describe("the last packet's verdict (first repetition)"),
  rules: z.array(Step).describe("the rules the last packet met (first repetition)"),
  packets: z.array(Trace).describe("every packet of the first repetition"),
  distribution: z
    .array(z.record(z.string(), z.number().int()))
    .optional()
    .describe('with count > 1: per packet, "verdict destination" -> how many repetitions'),
});

const view = (t: PacketTrace): z.infer<typeof Trace> => ({
  packet: t.packet,
  verdict: t.verdict,
  ...(t.finalDestination ? { finalDestination: t.finalDestination } : {}),
  rules: t.steps,
});

let running = false;

export const traceRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    "/:name/versions/:v/trace",
    {
      config: { access: "operate" },
      schema: {
        tags: ["rulesets"],
        operationId: "traceRulesetVersion",
        summary: "Trace packets through a version in a throwaway network namespace",
        description:
          "The kernel's own answer: the version's nftables rendering is loaded into a throwaway namespace and the packets are injected with nftrace set. Needs CAP_NET_ADMIN on the server (503 not_capable without it); one trace at a time (503 busy).",
        params: Params,
        body: Body,
        response: {
          200: Result.describe("The rules each packet met and its verdict."),
          ...errorResponses(400, 401, 403, 404, 422, 503),
        },
      },
    },
    async (req) => {
      let packets: PacketSpec[];
      try {
        packets = req.body.packets.map((p) => parsePacketSpec(p));
      } catch (e) {
        if (e instanceof PacketSpecError)
          throw new ApiError(400, "invalid_request", e.message, [
            { path: "/packets", code: e.code, message: e.message },
          ]);
        throw e;
      }
      const v = await app.db.rulesetVersion.findFirst({
        where: { number: req.params.v, ruleset: { name: req.params.name } },
      });
      if (!v) throw notFound(`version ${req.params.v} of ruleset "${req.params.name}"`);
      const rendered = await app.cpu.run("render", { document: v.document, target: "nftables", capabilities: {} });
      if (!rendered.ok)
        throw new ApiError(
          422,
          "invalid_policy",
          `version ${v.number} cannot be rendered for nftables`,
          toDetails(rendered.errors),
        );
      if (running)
        throw new ApiError(503, "busy", "another trace is running on this server; retry shortly", [], {
          "retry-after": "5",
        });
      running = true;
      try {
        const r = await driver.trace({ rulesetText: rendered.text, packets, count: req.body.count });
        const first = r.runs[0]!;
        const lastTrace = first[first.length - 1]!;
        const distribution: Array<Record<string, number>> = [];
        if (r.runs.length > 1) {
          for (const run of r.runs)
            run.forEach((t, i) => {
              const key = `${t.verdict}${t.finalDestination ? ` ${t.finalDestination}` : ""}`;
              const d = (distribution[i] ??= {});
              d[key] = (d[key] ?? 0) + 1;
            });
        }
        return {
          verdict: lastTrace.verdict,
          rules: lastTrace.steps,
          packets: first.map(view),
          ...(r.runs.length > 1 ? { distribution } : {}),
        };
      } catch (e) {
        if (e instanceof NftError && e.code === "permission_denied") throw new ApiError(503, "not_capable", e.message);
        if (e instanceof NftError && (e.code === "nft_not_found" || e.code === "nft_timeout"))
          throw new ApiError(503, "not_capable", `this server cannot run traces: ${e.message}`);
        throw e;
      } finally {
        running = false;
      }
    },
  );
};
