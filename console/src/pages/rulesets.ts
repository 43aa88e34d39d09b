// Rulesets: versions, the rendered nftables text, a side-by-side diff of two versions'
// renderings, lint warnings (POST /v1/validate, operator), and deploying a version.
import { api, qs, type Page } from "../api.ts";
import { clear, field, fmtTime, h, select } from "../dom.ts";
import type { Ctx } from "./ctx.ts";

interface Ruleset {
  name: string;
  description: string;
  latestVersion: number;
  updatedAt: string;
}
interface VersionSummary {
  version: number;
  checksum: string;
  author: string;
  message: string;
  createdAt: string;
}
interface Diagnostic {
  path: string;
  code: string;
  message: string;
  severity?: string;
}

/** Line diff (LCS) of two texts, as aligned rows for a side-by-side view. */
export function sideBySide(
  a: string[],
  b: string[],
): { left: string | null; right: string | null; kind: "same" | "del" | "add" }[] {
  const n = a.length;
  const m = b.length;
  if (n * m > 4_000_000)
    return [
      ...a.map((l) => ({ left: l, right: null, kind: "del" as const })),
      ...b.map((l) => ({ left: null, right: l, kind: "add" as const })),
    ];
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      dp[i]![j] = a[i] === b[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
  const out: { left: string | null; right: string | null; kind: "same" | "del" | "add" }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) out.push({ left: a[i++]!, right: b[j++]!, kind: "same" });
    else if (j < m && (i >= n || dp[i]![j + 1]! >= dp[i + 1]![j]!))
      out.push({ left: null, right: b[j++]!, kind: "add" });
    else out.push({ left: a[i++]!, right: null, kind: "del" });
  }
  return out;
}

export async function rulesetsPage(ctx: Ctx, main: HTMLElement, name?: string): Promise<void> {
  const list = await api<Page<Ruleset>>("GET", `/v1/rulesets${qs({ limit: 200 })}`);
  const picker = select(
    "ruleset",
    list.items.map((r) => [r.name, `${r.name} (v${r.latestVersion})`]),
    name ?? list.items[0]?.name ?? "",
  );
  picker.addEventListener("change", () => ctx.go(`#/rulesets/${encodeURIComponent(picker.value)}`));
  const detail = h("div");
  clear(
    main,
    h("h2", {}, "Rulesets"),
    list.items.length ? field("Ruleset", picker) : h("p", {}, "No rulesets yet (palisade push)."),
    detail,
  );
  if (!picker.value) return;
  const rs = picker.value;
  const versions = await api<Page<VersionSummary>>(
    "GET",
    `/v1/rulesets/${encodeURIComponent(rs)}/versions${qs({ limit: 100 })}`,
  );
  const opts: [string, string][] = versions.items.map((v) => [
    String(v.version),
    `v${v.version} — ${v.message || v.author}`,
  ]);
  const vSel = select("version", opts, opts[0]?.[0]);
  const fromSel = select("from", opts, opts[1]?.[0] ?? opts[0]?.[0]);
  const rendered = h("pre", { class: "code", "aria-label": "Rendered nftables", tabindex: 0 });
  const lint = h("div", { "aria-live": "polite" });
  const diffBox = h("div", { class: "diff" });
  const deployBox = h("div");
  const show = async () => {
    const v = vSel.value;
    const text = await api<string>(
      "GET",
      `/v1/rulesets/${encodeURIComponent(rs)}/versions/${v}/render${qs({ target: "nftables" })}`,
    );
    rendered.textContent = text;
    if (ctx.canOperate) {
      const doc = await api<{ document: unknown }>("GET", `/v1/rulesets/${encodeURIComponent(rs)}/versions/${v}`);
      const r = await api<{ valid: boolean; warnings?: Diagnostic[]; errors?: Diagnostic[] }>("POST", "/v1/validate", {
        policy: doc.document,
      });
      const w = [...(r.errors ?? []), ...(r.warnings ?? [])];
      clear(
        lint,
        h("h3", {}, `Lint: ${w.length} warning(s)`),
        w.length
          ? h(
              "ul",
              {},
              w.map((d) => h("li", {}, h("code", {}, d.path || "/"), ` ${d.code}: ${d.message}`)),
            )
          : h("p", { class: "muted" }, "No warnings."),
      );
    } else
      clear(lint, h("p", { class: "muted" }, "Lint warnings are shown to operators and admins (POST /v1/validate)."));
    const from = fromSel.value;
    const before =
      from === v
        ? text
        : await api<string>(
            "GET",
            `/v1/rulesets/${encodeURIComponent(rs)}/versions/${from}/render${qs({ target: "nftables" })}`,
          );
    const rows = sideBySide(before.split("\n"), text.split("\n"));
    clear(
      diffBox,
      h("h3", {}, `Diff v${from} → v${v}`),
      h(
        "table",
        { class: "sbs", "aria-label": `Side-by-side diff of v${from} and v${v}` },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, `v${from}`), h("th", { scope: "col" }, `v${v}`))),
        h(
          "tbody",
          {},
          rows.map((r) => h("tr", { class: r.kind }, h("td", {}, r.left ?? ""), h("td", {}, r.right ?? ""))),
        ),
      ),
    );
  };
  vSel.addEventListener("change", () => void show());
  fromSel.addEventListener("change", () => void show());
  if (ctx.canOperate) {
    const labels = h("input", { name: "selector", placeholder: "role=edge", required: true });
    const canary = h("input", { name: "canary", type: "number", min: 0, value: 1 });
    const batch = h("input", { name: "batchSize", type: "number", min: 1, value: 25 });
    const msg = h("p", { role: "status" });
    deployBox.append(
      h(
        "form",
        {
          class: "card",
          "aria-label": "Deploy",
          onsubmit: async (e: Event) => {
            e.preventDefault();
            const sel = Object.fromEntries(
              labels.value
                .split(",")
                .map((kv) => kv.trim().split("="))
                .filter((kv) => kv.length === 2 && kv[0]),
            );
            try {
              const d = await api<{ id: string }>("POST", "/v1/deployments", {
                ruleset: rs,
                version: Number(vSel.value),
                selector: { labels: sel },
                strategy: { canary: Number(canary.value), batchSize: Number(batch.value) },
              });
              ctx.go(`#/deployments/${d.id}`);
            } catch (x) {
              msg.textContent = (x as Error).message;
            }
          },
        },
        h("h3", {}, "Deploy this version"),
        field("Hosts with labels (key=value,…)", labels),
        field("Canary hosts", canary),
        field("Batch size", batch),
        h("button", { type: "submit" }, "Deploy"),
        msg,
      ),
    );
  }
  clear(
    detail,
    h(
      "table",
      { "aria-label": "Versions" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Version", "Author", "Message", "Created", "Checksum"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      h(
        "tbody",
        {},
        versions.items.map((v) =>
          h(
            "tr",
            {},
            h("td", {}, `v${v.version}`),
            h("td", {}, v.author),
            h("td", {}, v.message),
            h("td", {}, fmtTime(v.createdAt)),
            h("td", {}, h("code", {}, v.checksum.slice(0, 12))),
          ),
        ),
      ),
    ),
    h("div", { class: "row" }, field("Version", vSel), field("Compare with", fromSel)),
    deployBox,
    lint,
    h("h3", {}, "Rendered nftables"),
    rendered,
    diffBox,
  );
  await show();
}
