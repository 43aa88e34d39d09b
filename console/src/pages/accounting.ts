// Accounting: top talkers of a table for a host and range (aggregated on the server,
// never the whole table in the browser), and a time series per address with uPlot.
import uPlot from "uplot";
import { api, qs, type Page } from "../api.ts";
import { clear, field, fmtBytes, fmtNum, h, select } from "../dom.ts";
import type { Ctx } from "./ctx.ts";

interface Table {
  name: string;
  hosts: number;
  firstAt: string;
  lastAt: string;
}
type N = number | string;
interface Row {
  ip: string;
  unattributed: boolean;
  srcBytes: N;
  srcPackets: N;
  dstBytes: N;
  dstPackets: N;
  value: N;
}
interface Point {
  t: string;
  srcBytes: N;
  srcPackets: N;
  dstBytes: N;
  dstPackets: N;
}

const RANGES: Record<string, { ms: number; step: "1m" | "1h" | "1d" }> = {
  "1h": { ms: 3600_000, step: "1m" },
  "24h": { ms: 86400_000, step: "1h" },
  "7d": { ms: 7 * 86400_000, step: "1h" },
  "30d": { ms: 30 * 86400_000, step: "1d" },
  "365d": { ms: 365 * 86400_000, step: "1d" },
};

export async function accountingPage(_ctx: Ctx, main: HTMLElement): Promise<void> {
  const tables = await api<Page<Table>>("GET", `/v1/accounting/tables${qs({ limit: 200 })}`);
  const table = select(
    "table",
    tables.items.map((t) => [t.name, `${t.name} (${t.hosts} host(s))`]),
  );
  const host = h("input", { name: "host", placeholder: "all hosts" });
  const range = select(
    "range",
    Object.keys(RANGES).map((k) => [k, `last ${k}`]),
    "1h",
  );
  const unit = select("unit", [
    ["bytes", "bytes"],
    ["packets", "packets"],
  ]);
  const top = h("tbody");
  const chartBox = h("div", { class: "chart", role: "img", "aria-label": "Traffic over time" });
  const chartTitle = h("h3", {}, "Traffic over time");
  const totals = h("p", { "data-testid": "series-total", "aria-live": "polite" });
  let chart: uPlot | undefined;
  let selectedIp = "";

  const span = () => {
    const r = RANGES[range.value]!;
    const to = new Date(Math.ceil(Date.now() / 60_000) * 60_000 + 60_000);
    return { from: new Date(to.getTime() - r.ms).toISOString(), to: to.toISOString(), step: r.step };
  };
  const key = (dir: "src" | "dst") => `${dir}${unit.value === "bytes" ? "Bytes" : "Packets"}` as "srcBytes";
  const fmt = (v: N) => (unit.value === "bytes" ? fmtBytes(v) : `${fmtNum(v)} pkts`);
  /** Exact, for totals: a reader compares them with what they sent. */
  const exact = (v: N) => (unit.value === "bytes" ? `${fmtNum(v)} B` : `${fmtNum(v)} pkts`);

  const drawSeries = async () => {
    const s = span();
    const points: Point[] = [];
    let cursor: string | null | undefined;
    for (let i = 0; i < 20; i++) {
      const p = await api<Page<Point>>(
        "GET",
        `/v1/accounting/series${qs({ table: table.value, ip: selectedIp || undefined, host: host.value.trim(), step: s.step, from: s.from, to: s.to, limit: 500, cursor: cursor ?? undefined })}`,
      );
      points.push(...p.items);
      cursor = p.nextCursor;
      if (!cursor) break;
    }
    const xs = points.map((p) => Date.parse(p.t) / 1000);
    const src = points.map((p) => Number(p[key("src")]));
    const dst = points.map((p) => Number(p[key("dst")]));
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    chartTitle.textContent = `Traffic over time: ${selectedIp || "whole table"} (${unit.value} per ${s.step})`;
    totals.textContent = `${selectedIp || "table"}: sent (src) ${exact(sum(src))}, received (dst) ${exact(sum(dst))} in ${points.length} bucket(s)`;
    chart?.destroy();
    const width = Math.max(320, chartBox.clientWidth || 800);
    chart = new uPlot(
      {
        width,
        height: 260,
        series: [
          {},
          {
            label: `src ${unit.value}`,
            stroke: "#1f6feb",
            fill: "rgba(31,111,235,.12)",
            value: (_u, v) => (v == null ? "—" : fmt(v)),
          },
          { label: `dst ${unit.value}`, stroke: "#d9480f", value: (_u, v) => (v == null ? "—" : fmt(v)) },
        ],
        axes: [
          {},
          { values: (_u, vals) => vals.map((v) => (unit.value === "bytes" ? fmtBytes(v) : fmtNum(v))), size: 80 },
        ],
      },
      [xs, src, dst],
      chartBox,
    );
  };

  const load = async () => {
    if (!table.value) return;
    const s = span();
    const rows = await api<{ items: Row[] }>(
      "GET",
      `/v1/accounting/top${qs({ table: table.value, host: host.value.trim(), by: unit.value, direction: "both", limit: 25, from: s.from, to: s.to })}`,
    );
    top.replaceChildren(
      ...rows.items.map((r) =>
        h(
          "tr",
          { "data-ip": r.ip },
          h(
            "th",
            { scope: "row" },
            h(
              "button",
              {
                type: "button",
                class: "link",
                onclick: () => ((selectedIp = r.ip), void drawSeries()),
                "aria-label": `Show ${r.ip || "unattributed"} over time`,
              },
              r.unattributed ? "(unattributed)" : r.ip,
            ),
          ),
          h("td", { class: "num", title: fmtBytes(r.srcBytes) }, `${fmtNum(r.srcBytes)} B`),
          h("td", { class: "num" }, fmtNum(r.srcPackets)),
          h("td", { class: "num", title: fmtBytes(r.dstBytes) }, `${fmtNum(r.dstBytes)} B`),
          h("td", { class: "num" }, fmtNum(r.dstPackets)),
        ),
      ),
    );
    await drawSeries();
  };
  const form = h(
    "form",
    { class: "filters", onsubmit: (e: Event) => (e.preventDefault(), void load()) },
    field("Table", table),
    field("Host", host),
    field("Range", range),
    field("Unit", unit),
    h("button", { type: "submit" }, "Show"),
  );
  for (const c of [table, range, unit]) c.addEventListener("change", () => void load());
  clear(
    main,
    h("h2", {}, "Accounting"),
    tables.items.length ? form : h("p", {}, "No accounting data yet."),
    h("h3", {}, "Top talkers"),
    h(
      "table",
      { "aria-label": "Top talkers" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Address", "Sent bytes", "Sent packets", "Received bytes", "Received packets"].map((c) =>
            h("th", { scope: "col" }, c),
          ),
        ),
      ),
      top,
    ),
    chartTitle,
    totals,
    chartBox,
  );
  await load();
}
