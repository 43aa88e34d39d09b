// A tiny element builder: h("button", { onclick }, "text"). Text is always set as text,
// never parsed as HTML, so nothing the API returns can inject markup.
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat())
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function clear(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  for (const c of children.flat())
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
}

/** A labelled form control: every input gets a <label for>. */
let nextId = 0;
export function field(label: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement): HTMLElement {
  control.id ||= `f${++nextId}`;
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

export function select(name: string, options: [value: string, label: string][], value = ""): HTMLSelectElement {
  const s = h("select", { name });
  for (const [v, l] of options) s.append(h("option", { value: v, selected: v === value }, l));
  return s;
}

export const fmtBytes = (n: number | string): string => {
  const v = Number(n);
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  let x = v;
  while (Math.abs(x) >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${x.toFixed(x < 10 ? 2 : 1)} ${units[i]}`;
};
export const fmtNum = (n: number | string): string => Number(n).toLocaleString("en-US");
export const fmtTime = (iso: string | null | undefined): string =>
  iso
    ? new Date(iso)
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z")
    : "never";
export function ago(iso: string | null | undefined): string {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function badge(text: string, kind = text): HTMLElement {
  return h("span", { class: `badge b-${kind}` }, text);
}
