// The console's shell: sign-in, navigation (hash routes, so reloads and links work
// without server-side routing) and the role, which decides which controls are shown.
// The API enforces the role anyway; hiding controls only keeps the page honest.
import { api, ApiFailure, setCsrf, type Session } from "./api.ts";
import { clear, field, h } from "./dom.ts";
import { accountingPage } from "./pages/accounting.ts";
import { adminPage } from "./pages/admin.ts";
import { deploymentsPage } from "./pages/deployments.ts";
import { fleetPage } from "./pages/fleet.ts";
import { logsPage } from "./pages/logs.ts";
import { quotasPage } from "./pages/quotas.ts";
import { rulesetsPage } from "./pages/rulesets.ts";
import type { Ctx } from "./pages/ctx.ts";

const PAGES: {
  path: string;
  title: string;
  render: (ctx: Ctx, main: HTMLElement, arg?: string) => Promise<void> | void;
  admin?: boolean;
}[] = [
  { path: "fleet", title: "Fleet", render: fleetPage },
  { path: "rulesets", title: "Rulesets", render: rulesetsPage },
  { path: "deployments", title: "Deployments", render: deploymentsPage },
  { path: "accounting", title: "Accounting", render: accountingPage },
  { path: "quotas", title: "Quotas", render: quotasPage },
  { path: "logs", title: "Logs", render: logsPage },
  { path: "admin", title: "Tokens & enrollment", render: adminPage, admin: true },
];

const top = document.getElementById("top")!;
const main = document.getElementById("main")!;
let session: Session | undefined;
/** Called when leaving a page (closes its live streams and timers). */
const leave: (() => void)[] = [];

function signInForm(message = ""): void {
  clear(top, h("h1", {}, "Palisade"));
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    required: true,
    placeholder: "pal_…",
  });
  const err = h("p", { class: "error", role: "alert" }, message);
  const form = h(
    "form",
    {
      class: "signin card",
      "aria-label": "Sign in",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        try {
          session = await api<Session>("POST", "/v1/session", { token: input.value });
          setCsrf(session.csrfToken);
          input.value = "";
          if (!location.hash || location.hash === "#/signin") location.hash = "#/fleet";
          await route();
        } catch (x) {
          err.textContent = (x as Error).message;
        }
      },
    },
    h("h2", {}, "Sign in"),
    h("p", {}, "Paste an API token. It stays on the server: the browser keeps only a session cookie."),
    field("API token", input),
    h("button", { type: "submit" }, "Sign in"),
    err,
  );
  clear(main, form);
  input.focus();
}

function nav(current: string): void {
  const links = PAGES.filter((p) => !p.admin || session?.role === "admin").map((p) =>
    h("a", { href: `#/${p.path}`, "aria-current": p.path === current ? "page" : undefined }, p.title),
  );
  clear(
    top,
    h("h1", {}, h("a", { href: "#/fleet" }, "Palisade")),
    h("nav", { "aria-label": "Pages" }, links),
    h(
      "div",
      { class: "who" },
      h("span", { "data-testid": "who" }, `${session!.name} (${session!.role})`),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: async () => {
            await api("DELETE", "/v1/session").catch(() => {});
            session = undefined;
            location.hash = "#/signin";
            signInForm();
          },
        },
        "Sign out",
      ),
    ),
  );
}

async function route(): Promise<void> {
  for (const fn of leave.splice(0)) fn();
  if (!session) {
    try {
      session = await api<Session>("GET", "/v1/session");
      setCsrf(session.csrfToken);
    } catch {
      return signInForm();
    }
  }
  const [, path = "fleet", arg] = location.hash.replace(/^#\/?/, "/").split("/").map(decodeURIComponent);
  const page = PAGES.find((p) => p.path === path) ?? PAGES[0]!;
  nav(page.path);
  document.title = `${page.title} · Palisade`;
  clear(main, h("p", { class: "muted" }, "Loading…"));
  const ctx: Ctx = {
    role: session.role,
    canOperate: session.role !== "viewer",
    isAdmin: session.role === "admin",
    onLeave: (fn) => leave.push(fn),
    go: (hash) => {
      location.hash = hash;
    },
  };
  try {
    await page.render(ctx, main, arg);
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401) {
      session = undefined;
      return signInForm("Your session ended; sign in again.");
    }
    clear(main, h("p", { class: "error", role: "alert" }, (e as Error).message));
  }
}

window.addEventListener("hashchange", () => void route());
void route();
