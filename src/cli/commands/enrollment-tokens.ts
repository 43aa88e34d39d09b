// `palisade enrollment-tokens`: one-time tokens an agent presents to enroll (admin).
//   create [--ttl 1d] [--labels k=v,...]   prints the secret once, with the agent line that uses it
//   ls                                     newest first (never the secrets)
//   revoke ID                              an unused token can no longer enroll
import type { Command } from "commander";
import { data, formatOf, labelText, out, printList, when, withOutput, type Column } from "../output.ts";
import { Rest, seg, withRestOptions, type RestOptions } from "../rest.ts";
import { parseDuration } from "../time.ts";
import { parseLabels } from "../args.ts";

interface Enrollment {
  id: string;
  labels: Record<string, string>;
  createdBy: string;
  expiresAt: string;
  usedAt: string | null;
  hostId: string | null;
  createdAt: string;
  token?: string;
}

const state = (t: Enrollment, now: number) =>
  t.usedAt ? "used" : Date.parse(t.expiresAt) <= now ? "expired" : "unused";

const COLUMNS: Column<Enrollment>[] = [
  { header: "ID", value: (t) => t.id },
  { header: "STATE", value: (t, now) => state(t, now) },
  when("EXPIRES", (t) => t.expiresAt),
  when("CREATED", (t) => t.createdAt),
  { header: "BY", value: (t) => t.createdBy },
  { header: "LABELS", value: (t) => labelText(t.labels) },
  when("USED", (t) => t.usedAt, true),
  { header: "HOST", value: (t) => t.hostId, wide: true },
];

type Opts = RestOptions & { output?: string; json?: boolean };

export function register(program: Command): void {
  const tokens = program
    .command("enrollment-tokens")
    .description("one-time tokens agents enroll with: create, ls, revoke ID");
  withOutput(
    withRestOptions(
      tokens
        .command("create")
        .description("a one-time enrollment token (its secret is shown only now)")
        .option("--ttl <duration>", "how long it can be used (60s-30d)", "1d")
        .option("--labels <k=v...>", "labels the enrolled host starts with (repeat or comma-separate)"),
    ),
  ).action(async (o: Opts & { ttl: string; labels?: string[] }) => {
    const t = await new Rest(o).request<Enrollment>("POST", "/v1/enrollment-tokens", {
      ttlSeconds: parseDuration(o.ttl, "--ttl"),
      labels: parseLabels(o.labels) ?? {},
    });
    const f = formatOf(o);
    if (f === "json" || f === "yaml") return out(data(t, f));
    out(
      [
        `enrollment token ${t.id} (expires ${t.expiresAt}${Object.keys(t.labels).length ? `, labels ${labelText(t.labels)}` : ""}):`,
        `  ${t.token}`,
        "start an agent with it (the secret is not shown again):",
        `  palisade agent --server <API host>:<gRPC port> --enroll-token ${t.token}`,
      ].join("\n") + "\n",
    );
  });
  withOutput(
    withRestOptions(
      tokens.command("ls").alias("list").description("enrollment tokens, newest first (never their secrets)"),
    ),
  ).action(async (o: Opts) => {
    printList(await new Rest(o).all<Enrollment>("/v1/enrollment-tokens"), COLUMNS, formatOf(o));
  });
  withRestOptions(
    tokens
      .command("revoke")
      .description("an unused token can no longer enroll")
      .argument("<id>", "enrollment token id"),
  ).action(async (id: string, o: RestOptions) => {
    await new Rest(o).request("DELETE", `/v1/enrollment-tokens/${seg(id)}`);
    out(`enrollment token ${id} revoked\n`);
  });
}
