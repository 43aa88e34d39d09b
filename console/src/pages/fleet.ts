// Hosts: connection, labels, desired vs applied version, drift as the agent described
// it, last seen, missing capabilities. Paged on the server (1,000 hosts stay fast).
import { api, qs, type Page } from "../api.ts";
import { ago, badge, clear, field, fmtTime, h, select } from "../dom.ts";
import type { Ctx } from "./ctx.ts";

export interface Host {
  id: string;
  name: string;
  labels: Record<string, string>;
  capabilities: Record<string, unknown>;
  connection: "never_connected" | "connected" | "disconnected";
  lastSeenAt: string | null;
  desiredVersion: { ruleset: string; version: number } | null;
  appliedVersion: { ruleset: string; version: number } | null;
  drift: boolean;
  driftDetails: { details?: string; reportedAt?: string; restored?: boolean } | null;
}

const ref = (v: Host["desiredVersion"]) => (v ? `${v.ruleset}@${v.version}` : "—");

/** What the agent reported it cannot do, as it phrased it: `capabilities.unavailable`
 *  holds `{program, reason}` ("log events unavailable: tcpdump not installed"). */
export function missingOf(caps: Record<string, unknown>): string[] {
  const list = caps.unavailable;
  if (!Array.isArray(list)) return [];
  return list.map((x) =>
    x && typeof x === "object" && "reason" in x ? String((x as { reason: unknown }).reason) : String(x),
  );
}

function driftView(host: Host): HTMLElement {
  if (!host.drift) return badge("in sync", "ok");
  const lines = String(host.driftDetails?.details ?? "")
    .split("\n")
    .filter((l) => l.trim())
    .slice(0, 12);
  return h(
    "details",
    {},
    h("summary", {}, badge("drifted", "bad"), ` ${lines.length} line(s)`),
    h(
      "ul",
      { class: "drift" },
      lines.map((l) =>
        h(
          "li",
          {},
          l.replace(/^\s*[-+]\s?/, (m) => (m.includes("+") ? "extra in kernel: " : "missing in kernel: ")),
        ),
      ),
    ),
  );
}

export async function fleetPage(_ctx: Ctx, main: HTMLElement): Promise<void> {
  const label = h("input", { name: "label", placeholder: "role=edge,zone=eu" });
  const conn = select("connection", [
    ["", "any"],
    ["connected", "connected"],
    ["disconnected", "disconnected"],
    ["never_connected", "never connected"],
  ]);
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Next page");
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  let cursor: string | null = null;
  const load = async (reset: boolean) => {
    if (reset) {
      cursor = null;
      body.replaceChildren();
    }
    const p = await api<Page<Host>>(
      "GET",
      `/v1/hosts${qs({ limit: 100, label: label.value.trim(), connection: conn.value, cursor: cursor ?? undefined })}`,
    );
    for (const x of p.items) {
      const missing = missingOf(x.capabilities);
      body.append(
        h(
          "tr",
          { "data-host": x.name },
          h("th", { scope: "row" }, x.name),
          h("td", {}, badge(x.connection.replace("_", " "), x.connection)),
          h(
            "td",
            {},
            Object.entries(x.labels).map(([k, v]) => h("span", { class: "label" }, `${k}=${v}`)),
          ),
          h("td", {}, ref(x.desiredVersion)),
          h(
            "td",
            {},
            ref(x.appliedVersion),
            x.desiredVersion && ref(x.desiredVersion) !== ref(x.appliedVersion)
              ? h("span", { class: "warn" }, " (not yet)")
              : null,
          ),
          h("td", {}, driftView(x)),
          h("td", { title: fmtTime(x.lastSeenAt) }, ago(x.lastSeenAt)),
          h("td", {}, missing.length ? missing.map((m) => badge(m, "bad")) : "—"),
        ),
      );
    }
    cursor = p.nextCursor;
    more.hidden = !cursor;
    summary.textContent = `${body.children.length} host(s) shown${cursor ? "; more on the next page" : ""}`;
  };
  more.addEventListener("click", () => void load(false));
  const form = h(
    "form",
    { class: "filters", onsubmit: (e: Event) => (e.preventDefault(), void load(true)) },
    field("Labels", label),
    field("Connection", conn),
    h("button", { type: "submit" }, "Filter"),
  );
  clear(
    main,
    h("h2", {}, "Fleet"),
    form,
    summary,
    h(
      "table",
      { "aria-label": "Hosts" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Host", "Connection", "Labels", "Desired", "Applied", "Drift", "Last seen", "Missing capabilities"].map(
            (c) => h("th", { scope: "col" }, c),
          ),
        ),
      ),
      body,
    ),
    more,
  );
  await load(true);
}
