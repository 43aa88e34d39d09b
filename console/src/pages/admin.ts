// Admin: API tokens (create, revoke: a revoked token's console sessions end too) and
// enrollment tokens for new agents.
import { api, qs, type Page } from "../api.ts";
import { clear, field, fmtTime, h, select } from "../dom.ts";
import type { Ctx } from "./ctx.ts";

interface Token {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export async function adminPage(_ctx: Ctx, main: HTMLElement): Promise<void> {
  const body = h("tbody");
  const secret = h("output", { "data-testid": "new-secret" });
  const load = async () => {
    const p = await api<Page<Token>>("GET", `/v1/tokens${qs({ limit: 200 })}`);
    body.replaceChildren(
      ...p.items.map((t) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, t.name),
          h("td", {}, t.role),
          h("td", {}, fmtTime(t.lastUsedAt)),
          h("td", {}, t.revokedAt ? `revoked ${fmtTime(t.revokedAt)}` : "active"),
          h(
            "td",
            {},
            t.revokedAt
              ? null
              : h(
                  "button",
                  {
                    type: "button",
                    "aria-label": `Revoke ${t.name}`,
                    onclick: async () => (await api("DELETE", `/v1/tokens/${t.id}`), void load()),
                  },
                  "Revoke",
                ),
          ),
        ),
      ),
    );
  };
  const name = h("input", { name: "name", required: true });
  const role = select("role", [
    ["viewer", "viewer"],
    ["operator", "operator"],
    ["admin", "admin"],
  ]);
  const labels = h("input", { name: "labels", placeholder: "role=edge" });
  clear(
    main,
    h("h2", {}, "API tokens"),
    h(
      "form",
      {
        class: "filters",
        "aria-label": "Create API token",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const r = await api<{ token: string }>("POST", "/v1/tokens", { name: name.value, role: role.value });
          secret.textContent = `New token (shown once): ${r.token}`;
          await load();
        },
      },
      field("Name", name),
      field("Role", role),
      h("button", { type: "submit" }, "Create token"),
    ),
    h(
      "table",
      { "aria-label": "API tokens" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "Role", "Last used", "State", ""].map((c, i) =>
            h("th", { scope: "col" }, i === 4 ? h("span", { class: "sr-only" }, "Actions") : c),
          ),
        ),
      ),
      body,
    ),
    h("h2", {}, "Enroll a host"),
    h(
      "form",
      {
        class: "filters",
        "aria-label": "Create enrollment token",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const l = Object.fromEntries(
            labels.value
              .split(",")
              .map((kv) => kv.trim().split("="))
              .filter((kv) => kv.length === 2 && kv[0]),
          );
          const r = await api<{ token: string; expiresAt: string }>("POST", "/v1/enrollment-tokens", { labels: l });
          secret.textContent = `palisade agent --enroll-token ${r.token} (valid until ${fmtTime(r.expiresAt)})`;
        },
      },
      field("Labels for the new host", labels),
      h("button", { type: "submit" }, "Create enrollment token"),
    ),
    h("p", {}, secret),
  );
  await load();
}
