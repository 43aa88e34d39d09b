// Every route group and the prefix it is mounted at. Add a group: one line here.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { accountingRoutes } from "./accounting.ts";
import { auditRoutes } from "./audit.ts";
import { banRoutes } from "./bans.ts";
import { conditionRoutes } from "./conditions.ts";
import { geoipRoutes } from "./geoip.ts";
import { dynamicSetRoutes } from "./dynamic-sets.ts";
import { consoleRoutes } from "./console.ts";
import { consoleSessionRoutes } from "./console-session.ts";
import { deploymentRoutes } from "./deployments.ts";
import { enrollmentTokenRoutes } from "./enrollment-tokens.ts";
import { healthRoutes } from "./health.ts";
import { hostRoutes } from "./hosts.ts";
import { tlsUpgradeRoutes } from "./tls-upgrade.ts";
import { logRoutes } from "./logs.ts";
import { quotaRoutes } from "./quotas.ts";
import { rulesetRoutes } from "./rulesets.ts";
import { tokenRoutes } from "./tokens.ts";
import { traceRoutes } from "./trace.ts";
import { validateRoutes } from "./validate.ts";
import { versionRoutes } from "./versions.ts";

export const routes: [prefix: string, plugin: FastifyPluginAsyncZod][] = [
  ["", healthRoutes],
  ["/v1/rulesets", rulesetRoutes],
  ["/v1/rulesets", versionRoutes],
  ["/v1/rulesets", traceRoutes],
  ["/v1", validateRoutes],
  ["/v1/tokens", tokenRoutes],
  ["/v1/audit", auditRoutes],
  ["/v1/hosts", hostRoutes],
  ["/v1/hosts", dynamicSetRoutes],
  ["/v1/hosts", tlsUpgradeRoutes],
  ["/v1/enrollment-tokens", enrollmentTokenRoutes],
  ["/v1/deployments", deploymentRoutes],
  ["/v1/accounting", accountingRoutes],
  ["/v1", quotaRoutes],
  ["/v1/logs", logRoutes],
  ["/v1/bans", banRoutes],
  ["/v1/conditions", conditionRoutes],
  ["/v1/geoip", geoipRoutes],
  ["", consoleRoutes],
  ["/v1/session", consoleSessionRoutes],
];
