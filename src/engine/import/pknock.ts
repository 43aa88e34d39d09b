// xtables-addons pknock. TCP mode (a knock sequence of TCP SYNs opens one port for the
// knocking source) is what protections.portKnock expresses, so such a rule is lifted into
// the preset. UDP mode ("SPA": an HMAC knock under --opensecret/--closesecret) takes two
// rules, the knock rule and a --checkip rule naming the port it opens; together they are
// lifted into protections.spaKnock (the agent verifies the HMAC).
import type { z } from "zod";
import { PortKnock, SpaKnock } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import type { DraftChain, IptablesContext, LineResult, PolicyDraft } from "./draft.ts";
import type { RuleDraft } from "./rule-draft.ts";
import { parsePort, parseUint } from "./values.ts";

/** `value` parsed as an entry of protections.<key>, or an import error naming the first field that does not fit. */
function fitPreset<T>(schema: z.ZodType<T>, key: "portKnock" | "spaKnock", value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  fail(
    "import_invalid_value",
    `pknock does not fit protections.${key}: ${issue?.path.join(".")}: ${issue?.message}`,
    "-m pknock",
  );
}

export function liftPknock(
  d: RuleDraft,
  chain: DraftChain,
  targetName: string | undefined,
  ctx: IptablesContext,
): LineResult {
  const o = d.pknock!;
  if (o.has("--opensecret") || o.has("--closesecret")) return spaKnockRule(d, chain, ctx);
  if (o.has("--checkip")) return spaCheckRule(d, chain, targetName, ctx);
  const { protocol, dport, ...rest } = d.match;
  const extra = Object.keys(rest);
  if (protocol !== "tcp") fail("import_unsupported", "pknock TCP mode needs -p tcp (knocks are TCP SYNs)", "-m pknock");
  if (chain.key !== "input")
    fail(
      "import_unsupported",
      "pknock is lifted into protections.portKnock, which protects the input chain only",
      chain.iptName,
    );
  if (targetName !== "ACCEPT")
    fail(
      "import_unsupported",
      "pknock rules are lifted only when they accept the knocked-open port (-j ACCEPT)",
      targetName ?? "-m pknock",
    );
  if (typeof dport !== "number")
    fail("import_unsupported", "pknock rules are lifted only with one --dport (the port that opens)", "--dport");
  if (extra.length > 0 || d.comment !== undefined)
    fail(
      "import_unsupported",
      `pknock with other matches (${extra.join(", ") || "comment"}) has no equivalent in protections.portKnock`,
      "-m pknock",
    );
  const ports = o.get("--knockports");
  const name = o.get("--name");
  const time = o.get("--time");
  if (!ports || !name) fail("import_missing_argument", "pknock needs --knockports and --name", "-m pknock");
  if (!time)
    fail("import_missing_argument", "pknock TCP mode needs --time (the manual makes it mandatory)", "-m pknock");
  const knockPorts = (ports.value ?? "").split(",").map((p) => parsePort(p, "--knockports"));
  const knockTimeoutSeconds = parseUint(time.value ?? "", "--time seconds", 365 * 86400);
  const auto = o.get("--autoclose");
  // --autoclose counts minutes; 0 (never close) has no equivalent: a preset port always closes again.
  const minutes = auto ? parseUint(auto.value ?? "", "--autoclose minutes", 525600) : undefined;
  if (minutes === 0)
    fail(
      "import_unsupported",
      "pknock --autoclose 0 (never close) has no equivalent: protections.portKnock always closes after openSeconds",
      "--autoclose",
    );
  const preset = {
    name: name.value ?? "",
    knockPorts,
    protocol: "tcp" as const,
    port: dport,
    knockTimeoutSeconds,
    openSeconds: minutes === undefined ? 60 : minutes * 60,
  };
  const entry = fitPreset(PortKnock, "portKnock", preset);
  const list = (ctx.draft.protections.portKnock ??= []);
  list.push(entry);
  const notes = [
    `pknock TCP mode (knocks ${knockPorts.join(",")} open tcp/${dport}) lifted into protections.portKnock`,
  ];
  if (!o.has("--strict"))
    notes.push("without --strict pknock tolerated stray knocks; the preset requires the exact sequence");
  if (!auto) notes.push("no --autoclose: the preset closes the port after its default 60 seconds");
  return {
    status: "lifted",
    target: { kind: "path", path: `/protections/portKnock/${list.length - 1}` },
    reason: notes.join("; "),
  };
}

// Knock rules whose --checkip rule has not come yet, per import, by pknock --name.
const pendingSpa = new WeakMap<
  PolicyDraft,
  Map<string, { knockPort: number; openSecret: string; closeSecret: string; openSeconds: number; line: number }>
>();

function spaKnockRule(d: RuleDraft, chain: DraftChain, ctx: IptablesContext): LineResult {
  const o = d.pknock!;
  const open = o.get("--opensecret");
  const close = o.get("--closesecret");
  if (!open || !close)
    fail("import_missing_argument", "pknock UDP mode needs both --opensecret and --closesecret", "-m pknock");
  const name = o.get("--name");
  const ports = o.get("--knockports");
  if (!name || !ports) fail("import_missing_argument", "pknock needs --knockports and --name", "-m pknock");
  if (d.match.protocol !== "udp")
    fail("import_unsupported", "pknock UDP mode needs -p udp (the knock is a UDP packet)", "-m pknock");
  if (chain.key !== "input")
    fail(
      "import_unsupported",
      "pknock knocks are lifted into protections.spaKnock, which protects the input chain only",
      chain.iptName,
    );
  const knockPorts = (ports!.value ?? "").split(",");
  if (knockPorts.length !== 1)
    fail(
      "import_invalid_value",
      "pknock --opensecret takes exactly one knock port (pknock refuses more)",
      "--knockports",
    );
  const auto = o.get("--autoclose");
  // --autoclose counts minutes; pknock's default (none) and 0 both mean: open until a close knock.
  const minutes = auto ? parseUint(auto.value ?? "", "--autoclose minutes", 525600) : 0;
  const map = pendingSpa.get(ctx.draft) ?? new Map();
  pendingSpa.set(ctx.draft, map);
  map.set(name!.value ?? "", {
    knockPort: parsePort(knockPorts[0]!, "--knockports"),
    openSecret: open!.value ?? "",
    closeSecret: close!.value ?? "",
    openSeconds: minutes * 60,
    line: ctx.line,
  });
  return {
    status: "lifted",
    target: { kind: "path", path: "/protections/spaKnock" },
    reason: `pknock UDP mode knock rule of "${name!.value}": becomes protections.spaKnock with the port of its --checkip rule; the agent verifies the HMAC knocks`,
  };
}

function spaCheckRule(
  d: RuleDraft,
  chain: DraftChain,
  targetName: string | undefined,
  ctx: IptablesContext,
): LineResult {
  const o = d.pknock!;
  const name = o.get("--name")?.value ?? "";
  const knock = pendingSpa.get(ctx.draft)?.get(name);
  if (!knock)
    fail(
      "import_unsupported",
      `pknock --checkip --name ${name} has no knock rule (--opensecret/--closesecret, same --name) before it`,
      "--checkip",
    );
  const { protocol, dport, ...rest } = d.match;
  if (protocol !== "tcp" && protocol !== "udp")
    fail("import_unsupported", "pknock --checkip is lifted only with -p tcp or -p udp and one --dport", "-m pknock");
  if (typeof dport !== "number")
    fail("import_unsupported", "pknock --checkip is lifted only with one --dport (the port that opens)", "--dport");
  if (targetName !== "ACCEPT")
    fail(
      "import_unsupported",
      "pknock --checkip rules are lifted only when they accept (-j ACCEPT)",
      targetName ?? "-m pknock",
    );
  if (chain.key !== "input")
    fail("import_unsupported", "protections.spaKnock protects the input chain only", chain.iptName);
  if (Object.keys(rest).length > 0)
    fail(
      "import_unsupported",
      `pknock --checkip with other matches (${Object.keys(rest).join(", ")}) has no equivalent in protections.spaKnock`,
      "-m pknock",
    );
  const { line, ...settings } = knock!;
  const entry = fitPreset(SpaKnock, "spaKnock", { name, protocol, port: dport, ...settings });
  const list = (ctx.draft.protections.spaKnock ??= []);
  list.push(entry);
  pendingSpa.get(ctx.draft)!.delete(name);
  return {
    status: "lifted",
    target: { kind: "path", path: `/protections/spaKnock/${list.length - 1}` },
    reason: `pknock UDP mode "${name}" (knocks on udp/${knock!.knockPort}, line ${line}) opens ${protocol}/${dport}: lifted into protections.spaKnock; the secrets are in the policy document`,
  };
}
