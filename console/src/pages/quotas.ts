// Quotas: usage bars per host and name, and a reset (operator) that travels to the agent.
import { api, qs, type Page } from "../api.ts";
import { ago, clear, field, fmtBytes, fmtNum, h } from "../dom.ts";
import type { Ctx } from "./ctx.ts";

type N = number | string;
interface Quota {
  hostId: string;
  host: string;
  name: string;
  mode: "bytes" | "packets";
  grow: boolean;
  limit: N;
  used: N;
  remaining: N | null;
  sampledAt: string | null;
}

export async function quotasPage(ctx: Ctx, main: HTMLElement): Promise<void> {
  const host = h("input", { name: "host", placeholder: "all hosts" });
  const body = h("tbody");
  const msg = h("p", { role: "status" });
  const load = async () => {
    const p = await api<Page<Quota>>("GET", `/v1/quotas${qs({ host: host.value.trim(), limit: 200 })}`);
    const fmt = (q: Quota, v: N) => (q.mode === "bytes" ? fmtBytes(v) : `${fmtNum(v)} pkts`);
    body.replaceChildren(
      ...p.items.map((q) =>
        h(
          "tr",
          { "data-quota": `${q.host}/${q.name}` },
          h("th", { scope: "row" }, q.host),
          h("td", {}, q.name),
          h(
            "td",
            {},
            q.grow
              ? h("span", {}, `${fmt(q, q.used)} counted`)
              : h(
                  "div",
                  {},
                  h("meter", {
                    min: 0,
                    max: Number(q.limit) || 1,
                    value: Number(q.used),
                    high: Number(q.limit) * 0.8,
                    "aria-label": `${q.name} on ${q.host}: ${fmt(q, q.used)} of ${fmt(q, q.limit)}`,
                  }),
                  ` ${fmt(q, q.used)} of ${fmt(q, q.limit)}`,
                ),
          ),
          h("td", { "data-testid": "used" }, String(q.used)),
          h("td", {}, ago(q.sampledAt)),
          h(
            "td",
            {},
            ctx.canOperate
              ? h(
                  "button",
                  {
                    type: "button",
                    "aria-label": `Reset ${q.name} on ${q.host}`,
                    onclick: async () => {
                      try {
                        const r = await api<{ delivered: boolean }>(
                          "POST",
                          `/v1/hosts/${encodeURIComponent(q.hostId)}/quotas/${encodeURIComponent(q.name)}/reset`,
                        );
                        msg.textContent = `Reset of ${q.name} on ${q.host} ${r.delivered ? "sent to the agent" : "queued until the agent connects"}.`;
                        setTimeout(() => void load().catch(() => {}), 1500);
                      } catch (x) {
                        msg.textContent = (x as Error).message;
                      }
                    },
                  },
                  "Reset",
                )
              : null,
          ),
        ),
      ),
    );
  };
  clear(
    main,
    h("h2", {}, "Quotas"),
    h(
      "form",
      { class: "filters", onsubmit: (e: Event) => (e.preventDefault(), void load()) },
      field("Host", host),
      h("button", { type: "submit" }, "Filter"),
      h("button", { type: "button", onclick: () => void load() }, "Refresh"),
    ),
    msg,
    h(
      "table",
      { "aria-label": "Quotas" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Host", "Quota", "Usage", "Used", "Sampled", ""].map((c, i) =>
            h("th", { scope: "col" }, i === 5 ? h("span", { class: "sr-only" }, "Actions") : c),
          ),
        ),
      ),
      body,
    ),
  );
  await load();
}
