// Deployments: the list, and one deployment's live progress host by host through the
// canary and batches (polled every 2 s while it runs), why a host waits, and rollback.
import { api, qs, type Page } from "../api.ts";
import { ago, badge, clear, fmtTime, h } from "../dom.ts";
import type { Ctx } from "./ctx.ts";
import type { Host } from "./fleet.ts";

interface Counts {
  total: number;
  pending: number;
  applying: number;
  applied: number;
  failed: number;
  rolled_back: number;
}
interface Deployment {
  id: string;
  ruleset: string;
  version: number;
  status: string;
  createdBy: string;
  counts: Counts;
  createdAt: string;
  finishedAt: string | null;
  rollbackOf: string | null;
}
interface Target {
  hostId: string;
  host: string;
  batch: number;
  status: string;
  error: string | null;
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
}

function progress(c: Counts): HTMLElement {
  const done = c.applied + c.failed + c.rolled_back;
  return h(
    "div",
    { class: "progress-wrap" },
    h("progress", { max: c.total || 1, value: done, "aria-label": `${done} of ${c.total} hosts finished` }),
    ` ${c.applied} applied, ${c.failed} failed, ${c.rolled_back} rolled back, ${c.pending + c.applying} to go`,
  );
}

export async function deploymentsPage(ctx: Ctx, main: HTMLElement, id?: string): Promise<void> {
  if (id) return deploymentDetail(ctx, main, id);
  const p = await api<Page<Deployment>>("GET", `/v1/deployments${qs({ limit: 50 })}`);
  clear(
    main,
    h("h2", {}, "Deployments"),
    p.items.length === 0 ? h("p", {}, "No deployments yet.") : null,
    h(
      "table",
      { "aria-label": "Deployments" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Deployment", "Version", "Status", "Progress", "By", "Created"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      h(
        "tbody",
        {},
        p.items.map((d) =>
          h(
            "tr",
            {},
            h("td", {}, h("a", { href: `#/deployments/${d.id}` }, d.id.slice(0, 8))),
            h("td", {}, `${d.ruleset}@${d.version}`),
            h("td", {}, badge(d.status)),
            h("td", {}, progress(d.counts)),
            h("td", {}, d.createdBy),
            h("td", {}, fmtTime(d.createdAt)),
          ),
        ),
      ),
    ),
  );
}

async function deploymentDetail(ctx: Ctx, main: HTMLElement, id: string): Promise<void> {
  const head = h("div", { "aria-live": "polite" });
  const body = h("tbody");
  const msg = h("div", { role: "status" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  ctx.onLeave(() => clearTimeout(timer));
  const hostCache = new Map<string, Host>();
  const refresh = async () => {
    const d = await api<Deployment & { targets: Target[] }>("GET", `/v1/deployments/${id}`);
    // Why a pending host waits: its agent's connection (a few lookups, only for waiting hosts).
    const waiting = d.targets.filter((t) => t.status === "pending").slice(0, 50);
    await Promise.all(
      waiting.map(async (t) => hostCache.set(t.hostId, await api<Host>("GET", `/v1/hosts/${t.hostId}`))),
    );
    const rollback =
      ctx.canOperate && ["succeeded", "failed", "halted", "running"].includes(d.status)
        ? h(
            "button",
            {
              type: "button",
              onclick: async () => {
                try {
                  const r = await api<{
                    id: string;
                    targets: number;
                    skippedReasons?: { host: string; reason: string }[];
                  }>("POST", `/v1/deployments/${id}/rollback`, {});
                  const skipped = r.skippedReasons ?? [];
                  if (skipped.length === 0) return ctx.go(`#/deployments/${r.id}`);
                  // Left-out hosts keep what they run (a kernel without a feature: the reason
                  // says what to deploy once fixed); moving on would hide that, so stay here.
                  clear(
                    msg,
                    h(
                      "p",
                      {},
                      "Rollback started as ",
                      h("a", { href: `#/deployments/${r.id}` }, `deployment ${r.id.slice(0, 8)}`),
                      ` on ${r.targets} host(s). Not rolled back:`,
                    ),
                    h(
                      "ul",
                      { "data-testid": "rollback-skipped" },
                      skipped.map((s) => h("li", { "data-host": s.host }, h("strong", {}, s.host), `: ${s.reason}`)),
                    ),
                  );
                  await refresh();
                } catch (x) {
                  msg.textContent = (x as Error).message;
                }
              },
            },
            "Roll back",
          )
        : null;
    clear(
      head,
      h(
        "h2",
        {},
        `Deployment ${d.id.slice(0, 8)} — ${d.ruleset}@${d.version} `,
        h("span", { "data-testid": "deployment-status" }, badge(d.status)),
      ),
      progress(d.counts),
      h(
        "p",
        { class: "muted" },
        `by ${d.createdBy}, ${fmtTime(d.createdAt)}${d.finishedAt ? `, finished ${fmtTime(d.finishedAt)}` : ""}`,
      ),
      rollback,
      msg,
    );
    body.replaceChildren(
      ...d.targets.map((t) => {
        const host = hostCache.get(t.hostId);
        const why =
          t.status === "pending"
            ? host && host.connection !== "connected"
              ? `waits: agent offline since ${ago(host.lastSeenAt)}`
              : `waits for batch ${t.batch}`
            : t.status === "applying"
              ? `applying (attempt ${t.attempts})`
              : (t.error ?? "");
        return h(
          "tr",
          { "data-host": t.host },
          h("th", { scope: "row" }, t.host),
          h("td", {}, t.batch === 0 ? "canary" : `batch ${t.batch}`),
          h("td", {}, badge(t.status)),
          h("td", {}, why),
          h("td", {}, fmtTime(t.finishedAt)),
        );
      }),
    );
    if (["pending", "running"].includes(d.status)) timer = setTimeout(() => void refresh().catch(() => {}), 2000);
  };
  clear(
    main,
    head,
    h(
      "table",
      { "aria-label": "Hosts of this deployment" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Host", "Batch", "Status", "Why", "Finished"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      body,
    ),
  );
  await refresh();
}
