// Packet log events: the newest page, then live over Server-Sent Events (EventSource
// sends the session cookie), filtered by host, prefix and mark on the server.
import { api, qs, type Page } from "../api.ts";
import { clear, field, fmtTime, h } from "../dom.ts";
import type { Ctx } from "./ctx.ts";

interface LogEvent {
  id: string;
  at: string;
  host: string;
  prefix: string;
  level: number;
  mark: number | null;
  ctmark: number | null;
  fields: Record<string, string | number>;
}
const MAX_ROWS = 500;

export async function logsPage(ctx: Ctx, main: HTMLElement): Promise<void> {
  const host = h("input", { name: "host", placeholder: "all hosts" });
  const prefix = h("input", { name: "prefix", placeholder: "any prefix" });
  const mark = h("input", { name: "mark", type: "number", min: 0, placeholder: "any mark" });
  const body = h("tbody", { "aria-live": "polite" });
  const state = h("p", { class: "muted", "data-testid": "stream-state" }, "connecting…");
  let es: EventSource | undefined;
  ctx.onLeave(() => es?.close());
  const row = (e: LogEvent) => {
    const f = e.fields;
    return h(
      "tr",
      { "data-id": e.id },
      h("td", {}, fmtTime(e.at)),
      h("td", {}, e.host),
      h("td", {}, h("code", {}, e.prefix)),
      h("td", {}, e.mark ?? "—"),
      h(
        "td",
        {},
        `${f.saddr ?? "?"}${f.sport ? `:${f.sport}` : ""} → ${f.daddr ?? "?"}${f.dport ? `:${f.dport}` : ""}`,
      ),
      h("td", {}, String(f.protocol ?? "")),
      h("td", {}, `${f.iif ?? ""}${f.oif ? ` → ${f.oif}` : ""}`),
    );
  };
  const start = async () => {
    es?.close();
    const filters = { host: host.value.trim(), prefix: prefix.value, mark: mark.value };
    const p = await api<Page<LogEvent>>("GET", `/v1/logs${qs({ ...filters, limit: 50 })}`);
    body.replaceChildren(...p.items.map(row));
    es = new EventSource(`/v1/logs/stream${qs(filters)}`);
    es.onopen = () => (state.textContent = "live");
    es.onerror = () => (state.textContent = "reconnecting…");
    es.addEventListener("log", (m) => {
      const e = JSON.parse((m as MessageEvent).data) as LogEvent;
      body.prepend(row(e));
      while (body.children.length > MAX_ROWS) body.lastElementChild!.remove();
    });
  };
  clear(
    main,
    h("h2", {}, "Log events"),
    h(
      "form",
      { class: "filters", onsubmit: (e: Event) => (e.preventDefault(), void start()) },
      field("Host", host),
      field("Prefix", prefix),
      field("Mark", mark),
      h("button", { type: "submit" }, "Apply filters"),
    ),
    state,
    h(
      "table",
      { "aria-label": "Log events" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Time", "Host", "Prefix", "Mark", "Flow", "Proto", "Interfaces"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      body,
    ),
  );
  await start();
}
