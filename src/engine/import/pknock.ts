// xtables-addons pknock in TCP mode (a knock sequence of TCP SYNs opens one port for the
// knocking source) is what protections.portKnock expresses, so such a rule is lifted into
// the preset. UDP/HMAC ("SPA") mode has no equivalent and is refused with the reason.
import { PortKnock } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import type { DraftChain, IptablesContext, LineResult } from "./draft.ts";
import type { RuleDraft } from "./rule-draft.ts";
import { parsePort, parseUint } from "./values.ts";

export function liftPknock(
  d: RuleDraft,
  chain: DraftChain,
  targetName: string | undefined,
  ctx: IptablesContext,
): LineResult {
  const o = d.pknock!;
  for (const k of ["--opensecret", "--closesecret", "--checkip"]) {
    const x = o.get(k);
    if (x)
      fail(
        "import_unsupported",
        "pknock UDP mode (HMAC secrets, SPA) is not supported: only TCP knock sequences map to protections.portKnock",
        x.opt,
      );
  }
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
  const parsed = PortKnock.safeParse(preset);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(
      "import_invalid_value",
      `pknock does not fit protections.portKnock: ${issue?.path.join(".")}: ${issue?.message}`,
      "-m pknock",
    );
  }
  const list = (ctx.draft.protections.portKnock ??= []);
  list.push(parsed.data);
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
