// `palisade tokens`: API tokens (admin). create NAME --role R prints the secret once;
// ls never shows secrets; revoke ID (the last active admin token is refused).
import type { Command } from "commander";
import { data, formatOf, out, printList, when, withOutput, type Column } from "../output.ts";
import { Rest, seg, withRestOptions, type RestOptions } from "../rest.ts";

interface Token {
  id: string;
  name: string;
  role: string;
  createdBy: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  token?: string;
}

const COLUMNS: Column<Token>[] = [
  { header: "NAME", value: (t) => t.name },
  { header: "ROLE", value: (t) => t.role },
  { header: "STATE", value: (t) => (t.revokedAt ? "revoked" : "active") },
  when("LAST USED", (t) => t.lastUsedAt),
  when("CREATED", (t) => t.createdAt),
  { header: "BY", value: (t) => t.createdBy, wide: true },
  { header: "ID", value: (t) => t.id },
];

type Opts = RestOptions & { output?: string; json?: boolean };

export function register(program: Command): void {
  const tokens = program.command("tokens").description("API tokens: create NAME --role R, ls, revoke ID");
  withOutput(
    withRestOptions(
      tokens
        .command("create")
        .description("a new API token (its secret is shown only now)")
        .argument("<name>", "token name")
        .requiredOption("--role <role>", "viewer, operator or admin"),
    ),
  ).action(async (name: string, o: Opts & { role: string }) => {
    const t = await new Rest(o).request<Token>("POST", "/v1/tokens", { name, role: o.role });
    const f = formatOf(o);
    out(
      f === "json" || f === "yaml"
        ? data(t, f)
        : `token ${t.name} (${t.role}, id ${t.id}); the secret is not shown again:\n  ${t.token}\n`,
    );
  });
  withOutput(
    withRestOptions(tokens.command("ls").alias("list").description("API tokens (never their secrets)")),
  ).action(async (o: Opts) => {
    printList(await new Rest(o).all<Token>("/v1/tokens"), COLUMNS, formatOf(o));
  });
  withRestOptions(
    tokens.command("revoke").description("the token no longer authenticates").argument("<id>", "token id"),
  ).action(async (id: string, o: RestOptions) => {
    await new Rest(o).request("DELETE", `/v1/tokens/${seg(id)}`);
    out(`token ${id} revoked\n`);
  });
}
