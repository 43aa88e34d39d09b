// REST over HTTPS (PALISADE_HTTPS_CERT_FILE / _KEY_FILE): `palisade server` as a real process
// serves TLS from certificate files, sends HSTS, marks the console cookie Secure, and the
// real CLI talks to it with --ca-file, PALISADE_CA_FILE or a context's ca-file; without the
// CA it refuses the server. A missing file or a key for another certificate stops the start.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { ConfigError, loadConfig } from "../../src/api/config.ts";
import { AgentCa } from "../../src/api/tls/ca.ts";
import { spawnServer, type ServerProcess } from "../support/server-process.ts";

const BIN = join(import.meta.dirname, "../../bin/palisade");
const dir = mkdtempSync(join(tmpdir(), `palisade-https-${process.pid}-`));
const file = (name: string) => join(dir, name);
let s: ServerProcess;
let base: string;
let admin: string;

before(async () => {
  const { ca } = await AgentCa.create();
  const server = await ca.issueServer(["127.0.0.1", "localhost"]);
  writeFileSync(file("ca.pem"), ca.certPem);
  writeFileSync(file("cert.pem"), server.certPem);
  writeFileSync(file("key.pem"), server.keyPem, { mode: 0o600 });
  const other = await (await AgentCa.create()).ca.issueServer(["127.0.0.1"]);
  writeFileSync(file("other-key.pem"), other.keyPem, { mode: 0o600 });
  s = await spawnServer({ PALISADE_HTTPS_CERT_FILE: file("cert.pem"), PALISADE_HTTPS_KEY_FILE: file("key.pem") });
  await s.line((l) => l.msg === "server started");
  base = `https://127.0.0.1:${s.port}`;
  admin = s.adminToken();
});
after(async () => {
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** One HTTPS request trusting only the test CA. */
function get(
  path: string,
  opts: { method?: string; body?: unknown } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request(
      base + path,
      {
        method: opts.method ?? "GET",
        ca: readFileSync(file("ca.pem")),
        headers: payload ? { "content-type": "application/json" } : {},
      },
      (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error("no answer in 30 s")));
    req.end(payload);
  });
}

function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PALISADE_")));
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...clean, HOME: dir, XDG_CONFIG_HOME: join(dir, "xdg"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => child.pid && process.kill(child.pid, "SIGKILL"), 60_000);
  return new Promise((resolve) =>
    child.once("close", (code) => (clearTimeout(timer), resolve({ code, stdout, stderr }))),
  );
}

describe("REST over HTTPS", () => {
  test("the listener speaks TLS with the configured certificate and says so", async () => {
    const listening = await s.line((l) => String(l.msg).startsWith("Server listening"));
    assert.match(String(listening.msg), /https:\/\/127\.0\.0\.1:/);
    const r = await get("/readyz");
    assert.equal(r.status, 200, r.body);
    // Plain HTTP on the same port gets no answer from the API.
    const plain = await new Promise<number | string>((resolve) => {
      const req = httpRequest(`http://127.0.0.1:${s.port}/readyz`, (res) => resolve(res.statusCode ?? 0));
      req.on("error", (e) => resolve(e.message));
      req.setTimeout(30_000, () => req.destroy(new Error("timeout")));
      req.end();
    });
    assert.notEqual(plain, 200, "plain http is not served");
  });

  test("every answer carries HSTS, errors included", async () => {
    for (const path of ["/readyz", "/v1/hosts", "/no-such-route"]) {
      const r = await get(path);
      assert.equal(r.headers["strict-transport-security"], "max-age=31536000", `${path} (${r.status})`);
    }
  });

  test("the console session cookie is Secure over the HTTPS listener", async () => {
    const r = await get("/v1/session", { method: "POST", body: { token: admin } });
    assert.equal(r.status, 200, r.body);
    const cookie = String(r.headers["set-cookie"]);
    assert.match(cookie, /palisade_session=[^;]+;/);
    assert.match(cookie, /; Secure/);
    assert.match(cookie, /HttpOnly/);
  });

  test("the CLI trusts the server with --ca-file, PALISADE_CA_FILE or the context's ca-file, and refuses it without", async () => {
    const env = { PALISADE_SERVER: base, PALISADE_TOKEN: admin };
    const flag = await cli(["rulesets", "list", "-o", "json", "--ca-file", file("ca.pem")], env);
    assert.equal(flag.code, 0, flag.stderr);
    assert.deepEqual(JSON.parse(flag.stdout), []);
    const fromEnv = await cli(["hosts", "list", "-o", "json"], { ...env, PALISADE_CA_FILE: file("ca.pem") });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    const without = await cli(["rulesets", "list"], env);
    assert.equal(without.code, 5, "unreachable: the server's certificate is not trusted");
    assert.match(without.stderr, /unreachable: cannot reach https:\/\/127\.0\.0\.1:\d+: .*certificate/);
    const wrongScheme = await cli(
      ["rulesets", "list", "--ca-file", file("ca.pem"), "--server", `http://127.0.0.1:${s.port}`],
      { PALISADE_TOKEN: admin },
    );
    assert.equal(wrongScheme.code, 2, wrongScheme.stderr);
    assert.match(wrongScheme.stderr, /not https/);

    writeFileSync(file("token"), admin, { mode: 0o600 });
    const login = await cli(
      ["login", "--server", base, "--token-file", file("token"), "--ca-file", file("ca.pem"), "--context", "tls"],
      {},
    );
    assert.equal(login.code, 0, login.stderr);
    const stored = parse(readFileSync(join(dir, "xdg", "palisade", "config.yaml"), "utf8")) as {
      contexts: { name: string; "ca-file"?: string }[];
    };
    assert.equal(stored.contexts.find((c) => c.name === "tls")?.["ca-file"], file("ca.pem"));
    const viaContext = await cli(["rulesets", "list", "-o", "json"], {});
    assert.equal(viaContext.code, 0, viaContext.stderr);
  });

  test("a missing file, a lone variable or a key of another certificate is refused at start, naming the variable", () => {
    const refuses = (env: Record<string, string>, re: RegExp) =>
      assert.throws(
        () => loadConfig(env),
        (e: unknown) => e instanceof ConfigError && re.test(e.message),
      );
    refuses({ PALISADE_HTTPS_CERT_FILE: file("cert.pem") }, /PALISADE_HTTPS_KEY_FILE: must be set/);
    refuses({ PALISADE_HTTPS_KEY_FILE: file("key.pem") }, /PALISADE_HTTPS_CERT_FILE: must be set/);
    refuses(
      { PALISADE_HTTPS_CERT_FILE: file("nope.pem"), PALISADE_HTTPS_KEY_FILE: file("key.pem") },
      /PALISADE_HTTPS_CERT_FILE: cannot read/,
    );
    refuses(
      { PALISADE_HTTPS_CERT_FILE: file("key.pem"), PALISADE_HTTPS_KEY_FILE: file("key.pem") },
      /PALISADE_HTTPS_CERT_FILE: .* is not a PEM certificate/,
    );
    refuses(
      { PALISADE_HTTPS_CERT_FILE: file("cert.pem"), PALISADE_HTTPS_KEY_FILE: file("other-key.pem") },
      /PALISADE_HTTPS_KEY_FILE: .* is not the key of the certificate/,
    );
    refuses(
      {
        PALISADE_HTTPS_CERT_FILE: file("cert.pem"),
        PALISADE_HTTPS_KEY_FILE: file("key.pem"),
        PALISADE_HSTS_MAX_AGE: "-1",
      },
      /PALISADE_HSTS_MAX_AGE/,
    );
    assert.equal(loadConfig({}).https, undefined);
    assert.equal(
      loadConfig({
        PALISADE_HTTPS_CERT_FILE: file("cert.pem"),
        PALISADE_HTTPS_KEY_FILE: file("key.pem"),
        PALISADE_HSTS_MAX_AGE: "0",
      }).https?.hstsMaxAge,
      0,
    );
  });
});
