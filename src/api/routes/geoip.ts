// Country data for the geoip match (docs/geoip.md): load a data set (the operator's CSV or
// the npm package installed beside the server) and read what is stored. A load is refused
// whole at its first bad line, and when it would leave a country that a version in use tests
// with no ranges (unless allowEmpty), nothing stored; a stored load is audited and the agents
// get element deltas for the countries their policies use, without a new ruleset version.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { ApiError, errorResponses } from "../errors.ts";
import { geoDataset, geoipHosts, loadGeoData, publishGeoipChange, readPackageData } from "../geoip/index.ts";
import { Timestamp, iso } from "../schemas.ts";

/** A full data set as CSV is ~23 MB (the npm package's two files); room for a larger one. */
const GEOIP_BODY_LIMIT = 96 * 1024 * 1024;

const AllowEmpty = z
  .boolean()
  .optional()
  .describe(
    "store even when a country that a deployed or deploying ruleset version tests would have no ranges (else 409 geoip_would_empty)",
  );

const LoadBody = z.union([
  z.strictObject({
    csv: z.string().min(1).describe("start,end,country lines (IPv4 and IPv6), xt_geoip's build-script layout"),
    source: z.string().max(200).optional().describe("what the file is, for the record (e.g. its name)"),
    allowEmpty: AllowEmpty,
  }),
  z.strictObject({
    package: z.literal(true).describe("read the npm package installed beside the server"),
    allowEmpty: AllowEmpty,
  }),
]);

const Dataset = z.object({
  revision: z.number().int(),
  source: z.string(),
  ranges: z.number().int(),
  countries: z.number().int(),
  loadedBy: z.string(),
  loadedAt: Timestamp.nullable(),
});

export const geoipRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    "/",
    {
      config: { access: "read" },
      schema: {
        tags: ["geoip"],
        operationId: "getGeoip",
        summary: "The stored country data: its last load and each country's interval counts",
        response: {
          200: z
            .object({
              dataset: Dataset.nullable(),
              countries: z.array(
                z.object({
                  country: z.string(),
                  ipv4: z.number().int(),
                  ipv6: z.number().int(),
                  revision: z.number().int(),
                }),
              ),
            })
            .describe(
              "The last load (null before any) and, per country, its interval counts and the revision it last changed at.",
            ),
          ...errorResponses(401),
        },
      },
    },
    async () => {
      const d = await geoDataset(app.db);
      return {
        dataset: d.dataset ? { ...d.dataset, loadedAt: d.dataset.loadedAt ? iso(d.dataset.loadedAt) : null } : null,
        countries: d.countries,
      };
    },
  );

  app.post(
    "/",
    {
      bodyLimit: GEOIP_BODY_LIMIT,
      config: { access: "operate" },
      schema: {
        tags: ["geoip"],
        operationId: "loadGeoip",
        summary: "Replace the country data (a CSV, or the npm package beside the server)",
        body: LoadBody,
        response: {
          200: z
            .object({
              revision: z.number().int(),
              source: z.string(),
              ranges: z.number().int().describe("lines that held a range"),
              countries: z.number().int(),
              intervals: z.number().int().describe("after merging each country's ranges"),
              changed: z.array(z.string()).describe("countries whose intervals changed"),
              emptiedInUse: z
                .array(z.string())
                .describe(
                  'countries a deployed or deploying version tests that this load left with no ranges ("CN"), or with none in a family a version tests them in ("DE/ipv6") (allowEmpty)',
                ),
              hosts: z.number().int().describe("geoip-capable hosts told about the change"),
              delivered: z.number().int().describe("of those, with an agent stream up now"),
              parseMs: z.number(),
              storeMs: z.number(),
            })
            .describe("The stored load and where its changes go."),
          ...errorResponses(400, 401, 403, 409, 422),
        },
      },
    },
    async (req) => {
      const b = req.body;
      const { csv, source } =
        "package" in b ? await readPackageData() : { csv: b.csv, source: b.source ?? "operator CSV" };
      const t0 = performance.now();
      // Off the event loop: the whole npm package is seconds of parsing (bench/README.md).
      const parsed = await app.cpu.run("parseGeoCsv", csv);
      const parseMs = performance.now() - t0;
      if (!parsed.ok)
        throw new ApiError(422, "invalid_geoip_data", `country data refused, nothing stored: ${parsed.error.message}`, [
          { path: "/csv", code: parsed.error.code, message: parsed.error.message },
        ]);
      const r = await loadGeoData(app.db, req.actor, parsed.value, source, {
        allowEmpty: b.allowEmpty === true,
        path: "package" in b ? "/package" : "/csv",
      });
      if (r.emptiedInUse.length)
        req.log.warn(
          { countries: r.emptiedInUse, revision: r.revision },
          "country data stored with allowEmpty: countries deployed versions test now have no ranges",
        );
      const storeMs = performance.now() - t0 - parseMs;
      const hosts = r.changed.length ? await geoipHosts(app.db) : [];
      const d = hosts.length
        ? await publishGeoipChange(app.redis, hosts, r.changed, r.revision)
        : { delivered: 0, offline: 0, publishErrors: 0 };
      if (d.publishErrors)
        req.log.warn(
          { hosts: d.publishErrors },
          "country data stored but not published (Redis); agents converge when they reconnect",
        );
      return { ...r, source, hosts: hosts.length, delivered: d.delivered, parseMs, storeMs };
    },
  );
};
