// Ruleset versions: immutable, numbered from 1 without gaps. A new version takes the
// ruleset row lock (UPDATE ... latest_version + 1) for the length of its transaction,
// so concurrent creates queue and each gets the next number; a failed create rolls the
// counter back with it.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { policyChecksum, type TargetCapabilities } from "../../engine/index.ts";
import { recordAudit } from "../audit.ts";
import type { Db, Prisma } from "../db/client.ts";
import { hostWhere } from "../db/hosts.ts";
import { ApiError, errorResponses, notFound } from "../errors.ts";
import { PolicyDocument } from "../openapi.ts";
import { decodeCursor, page, pageOf, PageQuery } from "../paging.ts";
import { requireValidPolicy } from "../policy-checks.ts";
import { redactDiffSecrets, redactPolicySecrets, REDACTED, seesPolicySecrets } from "../policy-secrets.ts";
import { ImportReport, PolicyRequest, toDetails } from "../policy-input.ts";
import { DiagnosticSchema, iso, Name, Timestamp } from "../schemas.ts";
import { RulesetParams } from "./rulesets.ts";

/** The kernel facts an agent reported in Hello (`capabilities.kernel`), as the engine names them. */
function targetCapabilities(reported: unknown): TargetCapabilities {
  const kernel = (reported as { kernel?: unknown } | null)?.kernel;
  return typeof kernel === "string" && kernel ? { kernelRelease: kernel } : {};
}

const VersionNumber = z.coerce.number().int().min(1).max(2_147_483_647);
const VersionParams = z.strictObject({ name: Name, v: VersionNumber });

const VersionSummary = z.object({
  ruleset: Name,
  version: z.number().int(),
  checksum: z.string().describe("sha256 hex of the canonical JSON of the document"),
  author: z.string(),
  message: z.string(),
  createdAt: Timestamp,
});
const Version = VersionSummary.extend({ document: PolicyDocument });
const Created = z.object({
  version: z.number().int(),
  checksum: z.string(),
  warnings: z.array(DiagnosticSchema),
  importReport: ImportReport.optional(),
  unchanged: z
    .boolean()
    .optional()
    .describe(
      "true (status 200) when ifChanged=true and the document equals the latest version's: nothing was created and `version` is that latest one",
    ),
});

const CreateQuery = z.strictObject({
  message: z.string().max(2000).optional().describe("for YAML bodies, which carry only the document"),
  ifChanged: z
    .enum(["true", "false"])
    .optional()
    .describe(
      "true: create nothing when the document's checksum equals the latest version's (answers 200 with unchanged: true)",
    ),
});
const RenderQuery = z.strictObject({
  target: z.enum(["nftables", "iptables"]).default("nftables"),
  host: z
    .string()
    .min(1)
    .max(253)
    .optional()
    .describe(
      "render for this enrolled host (id or name): limits that depend on its kernel come from the capabilities its agent reported",
    ),
});
const DiffQuery = z.strictObject({
  from: VersionNumber.optional().describe("default: the version before `to`"),
  to: VersionNumber.optional().describe("default: the latest version"),
});
const Change = z.object({
  op: z.enum(["add", "remove", "change"]),
  path: z.string().describe("JSON pointer into the document"),
  from: z.unknown().optional(),
  to: z.unknown().optional(),
});
const Diff = z.object({ ruleset: Name, from: z.number().int(), to: z.number().int(), changes: z.array(Change) });

type VersionRow = Prisma.RulesetVersionGetPayload<{ include: { ruleset: { select: { name: true } } } }>;

const summaryView = (v: VersionRow): z.infer<typeof VersionSummary> => ({
  ruleset: v.ruleset.name,
  version: v.number,
  checksum: v.checksum,
  author: v.author,
  message: v.message,
  createdAt: iso(v.createdAt),
});

async function requireRuleset(db: Db, name: string): Promise<void> {
  if (!(await db.ruleset.count({ where: { name } }))) throw notFound(`ruleset "${name}"`);
}

async function findVersion(db: Db, name: string, number: number): Promise<VersionRow> {
  const v = await db.rulesetVersion.findFirst({
    where: { number, ruleset: { name } },
    include: { ruleset: { select: { name: true } } },
  });
  if (v) return v;
  await requireRuleset(db, name);
  throw notFound(`version ${number} of ruleset "${name}"`);
}

export const versionRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    "/:name/versions",
    {
      config: { access: "operate" },
      schema: {
        tags: ["rulesets"],
        operationId: "createRulesetVersion",
        summary: "Create a ruleset version",
        description:
          "Body: `{policy}` or `{format, source}` as JSON, or the policy document itself as application/yaml.",
        params: RulesetParams,
        querystring: CreateQuery,
        body: PolicyRequest,
        response: {
          201: Created.describe("The new immutable version with its lint warnings."),
          200: Created.describe(
            "With ifChanged=true only: the document equals the latest version, which is returned; nothing was created.",
          ),
          ...errorResponses(400, 401, 403, 404, 413, 422, 503),
        },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      await requireRuleset(app.db, name);
      const { policy, warnings, importReport } = await requireValidPolicy(app.cpu, req.body);
      const checksum = policyChecksum(policy);
      const message = req.body.message ?? req.query.message ?? "";
      const ifChanged = req.query.ifChanged === "true";
      const number = await app.db.$transaction(async (tx) => {
        if (ifChanged) {
          // Under the ruleset's row lock, as a create takes it: no version can land between this read and the answer.
          const [locked] = await tx.$queryRaw<
            { latest_version: number }[]
          >`SELECT latest_version FROM rulesets WHERE name = ${name} FOR UPDATE`;
          const latest = locked?.latest_version ?? 0;
          if (latest > 0) {
            const v = await tx.rulesetVersion.findFirst({
              where: { number: latest, ruleset: { name } },
              select: { checksum: true },
            });
            if (v?.checksum === checksum) return { unchanged: latest };
          }
        }
        const r = await tx.ruleset.update({
          where: { name },
          data: { latestVersion: { increment: 1 }, updatedAt: new Date() },
        });
        await tx.rulesetVersion.create({
          data: {
            rulesetId: r.id,
            number: r.latestVersion,
            document: policy as Prisma.InputJsonValue,
            checksum,
            author: req.actor.name,
            message,
          },
        });
        await recordAudit(tx, req.actor, "ruleset.version.create", `ruleset:${name}/versions/${r.latestVersion}`, {
          checksum,
          message,
        });
        return r.latestVersion;
      });
      if (typeof number === "object")
        return reply.status(200).send({
          version: number.unchanged,
          checksum,
          warnings,
          unchanged: true,
          ...(importReport && { importReport }),
        });
      return reply.status(201).send({ version: number, checksum, warnings, ...(importReport && { importReport }) });
    },
  );

  app.get(
    "/:name/versions",
    {
      config: { access: "read" },
      schema: {
        tags: ["rulesets"],
        operationId: "listRulesetVersions",
        summary: "List versions of a ruleset",
        description: "Newest first.",
        params: RulesetParams,
        querystring: PageQuery,
        response: {
          200: pageOf(VersionSummary).describe("A page of versions, newest first."),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const { name } = req.params;
      await requireRuleset(app.db, name);
      const before = decodeCursor(req.query.cursor, z.tuple([z.number().int()]));
      const rows = await app.db.rulesetVersion.findMany({
        where: { ruleset: { name }, ...(before ? { number: { lt: before[0] } } : {}) },
        orderBy: { number: "desc" },
        take: req.query.limit + 1,
        include: { ruleset: { select: { name: true } } },
      });
      return page(rows, req.query.limit, summaryView, (v) => [v.number]);
    },
  );

  app.get(
    "/:name/versions/:v",
    {
      config: { access: "read" },
      schema: {
        tags: ["rulesets"],
        operationId: "getRulesetVersion",
        summary: "Get a ruleset version",
        description: `A viewer sees each protections.spaKnock secret as "${REDACTED}"; operators and admins see the secrets.`,
        params: VersionParams,
        response: { 200: Version.describe("The version with its policy document."), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const v = await findVersion(app.db, req.params.name, req.params.v);
      const doc = seesPolicySecrets(req.actor.role) ? v.document : redactPolicySecrets(v.document);
      return { ...summaryView(v), document: doc as Record<string, unknown> };
    },
  );

  app.get(
    "/:name/versions/:v/render",
    {
      config: { access: "read" },
      schema: {
        tags: ["rulesets"],
        operationId: "renderRulesetVersion",
        summary: "Render a version as nftables or iptables-restore text",
        description: "The rules as the agent would load them (`nft -f` or `iptables-restore` input).",
        produces: ["text/plain"],
        params: VersionParams,
        querystring: RenderQuery,
        response: {
          200: z.string().describe("The rendered rules, as text/plain."),
          ...errorResponses(400, 401, 404, 413, 422, 503),
        },
      },
    },
    async (req, reply) => {
      const v = await findVersion(app.db, req.params.name, req.params.v);
      let capabilities: TargetCapabilities = {};
      if (req.query.host !== undefined) {
        const host = await app.db.host.findUnique({ where: hostWhere(req.query.host), select: { capabilities: true } });
        if (!host) throw notFound(`host "${req.query.host}"`);
        capabilities = targetCapabilities(host.capabilities);
      }
      // Re-validated in case the engine's rules moved on since the version was stored.
      const rendered = await app.cpu.run("render", { document: v.document, target: req.query.target, capabilities });
      if (!rendered.ok && rendered.stage === "validate") {
        throw new ApiError(
          422,
          "invalid_policy",
          `version ${v.number} no longer validates with this engine`,
          toDetails(rendered.errors),
        );
      }
      if (!rendered.ok) {
        throw new ApiError(
          422,
          "invalid_policy",
          `version ${v.number} cannot be rendered for ${req.query.target}`,
          toDetails(rendered.errors),
        );
      }
      return reply.type("text/plain; charset=utf-8").header("x-palisade-checksum", v.checksum).send(rendered.text);
    },
  );

  app.get(
    "/:name/diff",
    {
      config: { access: "read" },
      schema: {
        tags: ["rulesets"],
        operationId: "diffRulesetVersions",
        summary: "Diff two versions of a ruleset",
        description: `For a viewer, spaKnock secrets in the changes read "${REDACTED}" (a changed secret still shows as a change).`,
        params: RulesetParams,
        querystring: DiffQuery,
        response: {
          200: Diff.describe("A structured diff of the two policy documents."),
          ...errorResponses(400, 401, 404, 413, 503),
        },
      },
    },
    async (req) => {
      const { name } = req.params;
      const r = await app.db.ruleset.findUnique({ where: { name } });
      if (!r) throw notFound(`ruleset "${name}"`);
      const to = req.query.to ?? r.latestVersion;
      const from = req.query.from ?? to - 1;
      if (from < 1 || to < 1)
        throw new ApiError(404, "not_found", `ruleset "${name}" has no version ${Math.max(from, 0)} to compare`);
      const [a, b] = await Promise.all([findVersion(app.db, name, from), findVersion(app.db, name, to)]);
      const changes = await app.cpu.run("diff", { from: a.document, to: b.document });
      return {
        ruleset: name,
        from,
        to,
        changes: seesPolicySecrets(req.actor.role) ? changes : redactDiffSecrets(changes),
      };
    },
  );
};
