// The web console in a real browser (Debian's chromium, driven by playwright-core) against
// the real API, the real agent gRPC server and deploy worker, and a real agent applying
// nftables in a network namespace that a sender namespace sends real packets through.
// Signs in, sees the agent connected, deploys and watches it succeed, reads the exact
// bytes sent in the accounting table and chart, resets a quota, watches a log event
// arrive live; then a viewer, who sees no write controls and whose writes the API
// refuses; then a rollback that leaves a host out (kernel without nft_queue) lists it with
// the reason instead of moving on to the new deployment. Every page is checked for labelled controls and keyboard reachability, and
// saved as a screenshot under test-artifacts/console/.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { buildConsole } from "../../scripts/build-console.ts";
import { loadConfig } from "../../src/agent/config.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { startAgent, type AgentHandle } from "../../src/agent/main.ts";
import { startDeployWorker, type RunningDeployWorker } from "../../src/api/deploy/worker.ts";
import { silentLog } from "../../src/api/grpc/context.ts";
import { startAgentServer, type RunningAgentServer } from "../../src/api/grpc/server.ts";
import { ensureCa } from "../../src/api/tls/ca.ts";
import { ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";
import { createLab, type NetnsLab } from "../support/netns.ts";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(import.meta.dirname, "../../test-artifacts/console");
const IPLEN = 100; // 72 bytes of payload + 8 UDP + 20 IPv4
const SENDER = `
const dgram = require("node:dgram");
const [dst, port, count, src] = process.argv.slice(1);
(async () => {
  const s = dgram.createSocket("udp4");
  await new Promise((r) => s.bind({ address: src, port: 0 }, r));
  const buf = Buffer.alloc(72, 0x61);
  for (let i = 0; i < Number(count); i++) await new Promise((r, j) => s.send(buf, Number(port), dst, (e) => (e ? j(e) : r())));
  s.close();
})().catch((e) => { console.error(e); process.exit(1); });
`;

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, tries = 150, stepMs = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Every form control on the page has an accessible name (a <label for>, aria-label or text). */
async function assertLabelled(page: Page, where: string): Promise<void> {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea, button")]
      .filter((el) => {
        const e = el as HTMLInputElement;
        if (e.type === "hidden" || e.closest("[hidden]")) return false;
        const byFor = e.id && document.querySelector(`label[for="${e.id}"]`)?.textContent?.trim();
        return !(byFor || e.getAttribute("aria-label") || (e.tagName === "BUTTON" && e.textContent?.trim()));
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  assert.deepEqual(unlabelled, [], `${where}: controls without a label`);
}

/** Tab from the top reaches the page's navigation and its first control. */
async function assertKeyboard(page: Page, where: string, target: string): Promise<void> {
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  await page.locator("body").focus();
  const seen: string[] = [];
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    const d = await page.evaluate(() => {
      const a = document.activeElement as HTMLElement | null;
      return a
        ? `${a.tagName.toLowerCase()}:${(a.getAttribute("aria-label") || a.textContent || (a as HTMLInputElement).name || "").trim().slice(0, 40)}`
        : "";
    });
    seen.push(d);
    if (d.includes(target)) return;
  }
  assert.fail(`${where}: "${target}" not reached with Tab; focus went ${seen.join(" | ")}`);
}

describe("web console in a real browser", {
  skip: !existsSync(CHROMIUM) && `${CHROMIUM} missing (Debian package chromium)`,
}, () => {
  let t: TestApp;
  let url: string;
  let grpc: RunningAgentServer;
  let worker: RunningDeployWorker;
  let lab: NetnsLab;
  let agent: AgentHandle | undefined;
  let browser: Browser;
  let page: Page;
  let dir: string;
  let ns: string;
  let sender: string;
  let dst: string;
  let src: string;
  let net4: string;
  let shot = 0;
  const snap = async (p: Page, name: string) => {
    await p.screenshot({ path: join(SHOTS, `${String(++shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  };
  const send = (count: number, port: number) =>
    lab.exec(sender, [process.execPath, "-e", SENDER, dst, String(port), String(count), src], { timeoutMs: 60_000 });
  const go = async (p: Page, hash: string, ready: string) => {
    // A fresh load every time (the same URL with only a hash would not reload).
    await p.goto(`${url}/?load=${++loads}#/${hash}`);
    try {
      await p.locator(ready).first().waitFor({ timeout: 20_000 });
    } catch (err) {
      await snap(p, `failed-${hash.replace(/\W/g, "_")}`);
      throw new Error(
        `#/${hash}: ${ready} did not appear; page says: ${(await p.locator("main").innerText()).slice(0, 500)}; errors: ${pageErrors.join("; ")}`,
        { cause: err },
      );
    }
  };
  const pageErrors: string[] = [];
  let loads = 0;

  before(async () => {
    await rm(SHOTS, { recursive: true, force: true });
    await mkdir(SHOTS, { recursive: true });
    await buildConsole();
    const prefix = `palisade-test:${process.pid}:${randomBytes(4).toString("hex")}`;
    t = await startTestApp({ queue: { prefix, lockMs: 5_000 } });
    url = await t.app.listen({ host: "127.0.0.1", port: 0 });
    // Mutual TLS, the product's default: the enrollment token pins this CA.
    const ca = await ensureCa(t.db, "console-browser-test-secret-key-0123456789");
    grpc = await startAgentServer(
      { db: t.db, redis: t.redis, log: silentLog },
      {
        address: "127.0.0.1:0",
        tls: { ca, enrollAddress: "127.0.0.1:0", serverNames: ["127.0.0.1"], clientCertTtlSeconds: 3600 },
      },
    );
    worker = await startDeployWorker(
      { db: t.db, redis: t.redis, log: silentLog },
      { prefix, pollMs: 100, lockMs: 5_000 },
    );
    lab = createLab();
    const p = await lab.pair();
    ns = p.server;
    sender = p.client;
    dst = p.link.b.ip4;
    src = p.link.a.ip4;
    net4 = p.link.net4;
    dir = await mkdtemp(join(tmpdir(), "palisade-console-"));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => m.type() === "error" && pageErrors.push(m.text()));
  });
  after(async () => {
    await browser?.close().catch(() => {});
    await agent?.stop().catch(() => {});
    await worker?.stop().catch(() => {});
    await grpc?.stop().catch(() => {});
    await lab?.cleanup();
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("signs in with an API token and shows the enrolled agent connected", async () => {
    await page.goto(`${url}/`);
    await page.getByLabel("API token").waitFor();
    await assertLabelled(page, "sign-in");
    await snap(page, "sign-in");
    await page.getByLabel("API token").fill(ROLE_TOKENS.admin);
    await page.keyboard.press("Enter");
    await page.getByTestId("who").waitFor();
    assert.match(await page.getByTestId("who").innerText(), /\(admin\)/);
    const cookies = await page.context().cookies();
    const c = cookies.find((x) => x.name === "palisade_session");
    assert.ok(c?.httpOnly, "the session cookie is HttpOnly");
    assert.equal(c?.sameSite, "Strict");
    assert.equal(await page.evaluate(() => document.cookie), "", "scripts cannot read the session");

    const enroll = await t.req("POST", "/v1/enrollment-tokens", { body: { labels: { site: "lab" }, ttlSeconds: 600 } });
    const token = (enroll.json() as { token: string }).token;
    const args = [
      "--server",
      `127.0.0.1:${grpc.port}`,
      "--enroll-server",
      `127.0.0.1:${grpc.enrollPort}`,
      "--state-dir",
      dir,
      "--name",
      "console-edge",
      "--netns",
      ns,
      "--telemetry-interval",
      "1",
      "--drift-interval",
      "0",
      "--enroll-token",
      token,
    ];
    agent = await startAgent(loadConfig(args), {
      log: memoryLog("warn"),
      backoff: { initialMs: 100, maxMs: 500 },
      heartbeatMs: 500,
    });
    assert.ok(agent.client.mutualTls, "the agent runs on mutual TLS");
    await until(
      "the agent to connect",
      async () => (await t.req("GET", "/v1/hosts/console-edge")).json().connection === "connected",
    );
    await go(page, "fleet", 'tr[data-host="console-edge"]');
    const row = page.locator('tr[data-host="console-edge"]');
    assert.match(await row.innerText(), /connected/);
    assert.match(await row.innerText(), /site=lab/);
    await assertLabelled(page, "fleet");
    await assertKeyboard(page, "fleet", "Filter");
    await snap(page, "fleet");
  });

  it("deploys a version from the rulesets page and watches it reach succeeded", async () => {
    assert.equal(
      (await t.req("POST", "/v1/rulesets", { body: { name: "edge", description: "lab edge" } })).statusCode,
      201,
    );
    const policy = (logPort: number) => ({
      description: "console e2e",
      accounting: { lan: { prefix: net4 } },
      quotas: { q1: { mode: "bytes", limit: 50_000_000 } },
      chains: {
        input: {
          hook: "input",
          policy: "accept",
          rules: [
            { comment: "per-address accounting", action: { type: "account", table: "lan" } },
            {
              comment: "log udp",
              match: { protocol: "udp", dport: logPort },
              action: { type: "log", prefix: "console: ", group: 5 },
            },
            { comment: "udp budget", match: { protocol: "udp", quota: { name: "q1" } }, action: "accept" },
          ],
        },
      },
    });
    for (const port of [7778, 7777])
      assert.equal(
        (
          await t.req("POST", "/v1/rulesets/edge/versions", {
            body: { policy: policy(port), message: `log udp ${port}` },
          })
        ).statusCode,
        201,
      );
    await go(page, "rulesets/edge", "pre.code");
    await page.locator("table.sbs tr.add").first().waitFor();
    assert.match(await page.locator("pre.code").innerText(), /log prefix "console: " group 5/);
    assert.match(await page.locator("table.sbs").innerText(), /udp dport 7777/);
    await assertLabelled(page, "rulesets");
    await snap(page, "rulesets");
    await page.getByLabel("Hosts with labels (key=value,…)").fill("site=lab");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.getByTestId("deployment-status").waitFor();
    await until(
      "the page to show succeeded",
      async () => /succeeded/.test(await page.getByTestId("deployment-status").innerText()),
      200,
      250,
    );
    assert.match(await page.locator('tr[data-host="console-edge"]').innerText(), /applied/);
    await assertLabelled(page, "deployment");
    await snap(page, "deployment");
    await go(page, "deployments", "table");
    await snap(page, "deployments");
    await go(page, "fleet", 'tr[data-host="console-edge"]');
    assert.match(
      await page.locator('tr[data-host="console-edge"]').innerText(),
      /edge@2\s+edge@2/,
      "desired and applied",
    );
    await snap(page, "fleet-deployed");
  });

  it("accounting: the top-talkers table and the chart show exactly the bytes sent", async () => {
    const count = 37;
    await send(count, 7000);
    await until("the API to hold the sent packets", async () => {
      const r = await t.req("GET", "/v1/accounting/tables/lan?host=console-edge");
      return (
        r.statusCode === 200 &&
        (r.json() as { items: { ip: string; srcPackets: number }[] }).items.find((x) => x.ip === src)?.srcPackets ===
          count
      );
    });
    await go(page, "accounting", `tr[data-ip="${src}"]`);
    const row = await page.locator(`tr[data-ip="${src}"]`).innerText();
    assert.match(row, new RegExp(`\\b${(count * IPLEN).toLocaleString("en-US")} B\\b`), row);
    assert.match(row, new RegExp(`\\b${count}\\b`));
    await page.getByRole("button", { name: `Show ${src} over time` }).click();
    await until("the series total", async () => (await page.getByTestId("series-total").innerText()).startsWith(src));
    const total = await page.getByTestId("series-total").innerText();
    assert.match(total, new RegExp(`sent \\(src\\) ${(count * IPLEN).toLocaleString("en-US")} B,`), total);
    assert.ok(await page.locator(".chart canvas").count(), "uPlot drew a canvas");
    await assertLabelled(page, "accounting");
    await snap(page, "accounting");
  });

  it("quotas: usage is shown and a reset brings it back to 0 in the kernel", async () => {
    await go(page, "quotas", 'tr[data-quota="console-edge/q1"]');
    const used = async () =>
      Number(await page.locator('tr[data-quota="console-edge/q1"] [data-testid=used]').innerText());
    assert.ok((await used()) >= 37 * IPLEN, `used ${await used()}`);
    await snap(page, "quotas");
    await page.getByRole("button", { name: "Reset q1 on console-edge" }).click();
    await page.getByRole("status").filter({ hasText: "Reset of q1" }).waitFor();
    await until(
      "the quota to read 0",
      async () => {
        await page.getByRole("button", { name: "Refresh" }).click();
        await new Promise((r) => setTimeout(r, 300));
        return (await used()) === 0;
      },
      100,
      300,
    );
    await assertLabelled(page, "quotas");
    await snap(page, "quotas-reset");
  });

  it("logs: an event appears live over SSE with the session cookie", async () => {
    await go(page, "logs", "[data-testid=stream-state]");
    await until("the stream to be live", async () => (await page.getByTestId("stream-state").innerText()) === "live");
    const before = await page.locator("tbody tr").count();
    await send(1, 7777);
    await until(
      "a live log row",
      async () =>
        (await page.locator("tbody tr").count()) > before &&
        /console:/.test(await page.locator("tbody tr").first().innerText()),
      150,
      200,
    );
    assert.match(
      await page.locator("tbody tr").first().innerText(),
      new RegExp(`${src.replace(/\./g, "\\.")}:\\d+ → ${dst.replace(/\./g, "\\.")}:7777`),
    );
    await assertLabelled(page, "logs");
    await snap(page, "logs");
    await go(page, "admin", "table");
    await assertLabelled(page, "admin");
    await snap(page, "admin");
  });

  it("a viewer sees no write controls, and the API refuses the writes anyway", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const v = await ctx.newPage();
    await v.goto(`${url}/`);
    await v.getByLabel("API token").fill(ROLE_TOKENS.viewer);
    await v.getByRole("button", { name: "Sign in" }).click();
    await v.getByTestId("who").waitFor();
    assert.equal(await v.getByRole("link", { name: "Tokens & enrollment" }).count(), 0);
    await go(v, "quotas", 'tr[data-quota="console-edge/q1"]');
    assert.equal(await v.getByRole("button", { name: /^Reset/ }).count(), 0, "no reset button");
    await snap(v, "viewer-quotas");
    await go(v, "rulesets/edge", "pre.code");
    assert.equal(await v.getByRole("button", { name: "Deploy", exact: true }).count(), 0, "no deploy form");
    const dep = (await t.req("GET", "/v1/deployments")).json().items[0].id as string;
    await go(v, `deployments/${dep}`, "[data-testid=deployment-status]");
    assert.equal(await v.getByRole("button", { name: "Roll back" }).count(), 0, "no rollback button");
    const host = (await t.req("GET", "/v1/hosts/console-edge")).json().id as string;
    // A string, not a function: the test's transpiler would wrap named helpers in __name().
    const statuses = (await v.evaluate(`(async () => {
      const s = await (await fetch("/v1/session")).json();
      const headers = { "x-csrf-token": s.csrfToken, "content-type": "application/json" };
      const out = [];
      for (const [path, body] of [["/v1/hosts/${host}/quotas/q1/reset", {}], ["/v1/deployments/${dep}/rollback", {}], ["/v1/deployments", { ruleset: "edge", version: 1, selector: { labels: { site: "lab" } } }]]) {
        out.push((await fetch(path, { method: "POST", headers, body: JSON.stringify(body) })).status);
      }
      return out;
    })()`)) as number[];
    assert.deepEqual(statuses, [403, 403, 403]);
    await ctx.close();
  });

  it("a rollback that leaves a host out shows it with the reason, and does not move on", async () => {
    // Hosts only in the database (no agent): r-lost ran the queue version, then the plain
    // one, and has since reported a kernel without nft_queue; r-kept can go back.
    assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "rbq" } })).statusCode, 201);
    const queue = {
      chains: {
        input: {
          hook: "input",
          policy: "accept",
          rules: [{ match: { protocol: "udp", dport: [7201] }, action: { type: "queue", num: 3 } }],
        },
      },
    };
    const plain = { chains: { input: { hook: "input", policy: "accept", rules: [{ action: "accept" }] } } };
    for (const policy of [queue, plain]) {
      const v = await t.req("POST", "/v1/rulesets/rbq/versions", { body: { policy } });
      assert.equal(v.statusCode, 201, v.body);
    }
    const ids = (
      await t.db.rulesetVersion.findMany({
        where: { ruleset: { name: "rbq" } },
        orderBy: { number: "asc" },
        select: { id: true },
      })
    ).map((v) => v.id);
    const base = ["ct", "fib", "limit", "log", "nat", "reject", "verdict_map", "bans", "conditions"];
    for (const name of ["rb-lost", "rb-kept"])
      await t.db.host.create({
        data: { name, capabilities: { features: [...base, "queue"] }, appliedVersionId: ids[0]! },
      });
    const d = await t.req("POST", "/v1/deployments", {
      body: { ruleset: "rbq", version: 2, selector: { hosts: ["rb-lost", "rb-kept"] } },
    });
    assert.equal(d.statusCode, 202, d.body);
    await t.db.host.update({
      where: { name: "rb-lost" },
      data: { appliedVersionId: ids[1]!, capabilities: { features: base } },
    });
    await t.db.host.update({ where: { name: "rb-kept" }, data: { appliedVersionId: ids[1]! } });
    const dep = d.json().id as string;
    await go(page, `deployments/${dep}`, "[data-testid=deployment-status]");
    const errorsBefore = pageErrors.length;
    await page.getByRole("button", { name: "Roll back" }).click();
    await page
      .locator('[data-testid=rollback-skipped] li[data-host="rb-lost"]')
      .waitFor({ timeout: 20_000 })
      .catch(async (err) => {
        throw new Error(`no skipped host shown; page says: ${(await page.locator("main").innerText()).slice(0, 800)}`, {
          cause: err,
        });
      });
    const text = await page.getByRole("status").filter({ hasText: "Not rolled back" }).innerText();
    assert.match(text, /Rollback started as deployment [0-9a-f]{8} on 1 host\(s\)\. Not rolled back:/);
    assert.match(text, /rb-lost: version 1 of ruleset "rbq", which it would go back to, needs nftables queue support/);
    assert.match(text, /deploy version 1 of ruleset "rbq" to it \(palisade deploy rbq@1 --hosts rb-lost\)/);
    assert.doesNotMatch(text, /rb-kept/);
    assert.equal(new URL(page.url()).hash, `#/deployments/${dep}`, "stays on the undone deployment");
    await page.getByRole("button", { name: "Roll back" }).waitFor({ state: "detached", timeout: 20_000 });
    await assertLabelled(page, "rollback-skipped");
    await snap(page, "rollback-skipped");
    assert.deepEqual(pageErrors.slice(errorsBefore), []);
  });
});
