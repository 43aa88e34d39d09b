// The import corpus (test/fixtures/import/corpus): real rule files from public sources,
// each with its origin in SOURCES. measureCorpus imports and renders every file and says
// how far each got; the kernel test adds `nft -c` in a namespace, and prints the rates.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { importPolicy, importRecorded, type ImportFormat, type ImportResult } from "../../src/engine/import/index.ts";
import { executeScript } from "../../src/cli/execute.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { createLab } from "./netns.ts";

export const CORPUS_DIR = join(import.meta.dirname, "..", "fixtures", "import", "corpus");

export interface CorpusFile {
  name: string;
  format: ImportFormat;
  text: string;
  /**
   * The dump's ipsets as `ipset restore` text, from its companion file NAME.ipset (NAME: the
   * file name without its extension) when the origin repository defines the sets (SOURCES says
   * where from); given to the import as `ipsets`, as `palisade import --ipset` would.
   */
  ipsets?: string;
}

/** `.rules`: iptables-save text; `.rules6`: ip6tables-save text; `.sh`: a shell script. */
export function corpusFiles(): CorpusFile[] {
  return readdirSync(CORPUS_DIR)
    .filter((n) => /\.(rules6?|sh)$/.test(n))
    .sort()
    .map((name) => {
      const companion = join(CORPUS_DIR, `${name.replace(/\.[^.]+$/, "")}.ipset`);
      const f: CorpusFile = {
        name,
        format: name.endsWith(".sh") ? "iptables" : "iptables-save",
        text: readFileSync(join(CORPUS_DIR, name), "utf8"),
      };
      if (existsSync(companion)) {
        // A script creates its sets itself (import --execute records its ipset commands).
        if (f.format === "iptables") throw new Error(`${name}: a script takes no companion .ipset file`);
        f.ipsets = readFileSync(companion, "utf8");
      }
      return f;
    });
}

/**
 * What iptables itself makes of a file, as the reference: "loads" when iptables-restore
 * (ip6tables-restore for `.rules6`) loads it in a fresh namespace after `ipset restore` of its
 * companion sets; "missing-set" when it refuses only because the file matches an ipset that
 * neither it nor a companion creates (the host it came from had the set); "refuses" for
 * anything else (a typo, a template, a rule iptables does not allow), which no host runs.
 * Scripts are not checked: they count as "loads".
 */
export type IptablesVerdict = { kind: "loads" } | { kind: "missing-set" | "refuses"; reason: string };

export async function iptablesVerdict(f: CorpusFile): Promise<IptablesVerdict> {
  if (f.format !== "iptables-save") return { kind: "loads" };
  const lab = createLab();
  try {
    const ns = await lab.addNamespace();
    if (f.ipsets !== undefined) {
      const s = await lab.exec(ns, ["ipset", "restore"], { input: f.ipsets, allowFailure: true });
      if (s.code !== 0) return { kind: "refuses", reason: `ipset restore: ${firstLine(s.stderr)}` };
    }
    const bin = f.name.endsWith(".rules6") ? "ip6tables-restore" : "iptables-restore";
    const r = await lab.exec(ns, [bin], { input: f.text, allowFailure: true, timeoutMs: 60_000 });
    if (r.code === 0) return { kind: "loads" };
    const reason = `${bin}: ${firstLine(r.stderr || r.stdout)}`;
    return { kind: /Set \S+ doesn't exist/.test(reason) ? "missing-set" : "refuses", reason };
  } finally {
    await lab.cleanup();
  }
}

function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "") ?? "(no message)"
  );
}

export type Stage = "import" | "validate" | "render" | "load" | "ok";

export interface FileOutcome {
  name: string;
  /** The first stage that failed, or "ok" once `nft -c` accepted the rendering. */
  stage: Stage;
  /** Why (first error), when stage is not ok. */
  reason?: string;
  /** Lines that became (part of) the policy, and lines that were refused; skipped lines count in neither. */
  linesImported: number;
  linesRefused: number;
  /** The nft text, when rendering succeeded. */
  nft?: string;
  /** What iptables-restore makes of the file (kernel test only). */
  iptables?: IptablesVerdict;
}

/** Positional parameters a script needs to do its work (init scripts take the action as $1). */
export const SCRIPT_ARGS: Record<string, string[]> = { "init-script-gateway.sh": ["start"] };

/**
 * Import, validate and render one file; `stage` is "load" when it is ready for `nft -c`.
 * With `execute`, a script runs in the sandbox of `palisade import --execute` (root only) and
 * its recorded commands are imported, as an operator would import it.
 */
export async function measureFile(f: CorpusFile, execute = false): Promise<FileOutcome> {
  let r: ImportResult;
  if (execute && f.format === "iptables") {
    const run = await executeScript(f.text, { args: SCRIPT_ARGS[f.name] ?? [], timeoutMs: 30_000 });
    r = importRecorded(run.commands);
    if (run.timedOut)
      r.errors.unshift({
        path: "/source",
        code: "import_script_timeout",
        message: "the script was killed at its time limit",
        severity: "error",
      });
  } else
    r = importPolicy(f.format, f.text, {
      ...(f.name.endsWith(".rules6") ? { family: "ipv6" as const } : {}),
      ...(f.ipsets === undefined ? {} : { ipsets: f.ipsets }),
    });
  return outcomeOf(f, r);
}

function outcomeOf(f: { name: string }, r: ImportResult): FileOutcome {
  const linesImported = r.report.filter((l) => l.status === "imported" || l.status === "lifted").length;
  const linesRefused = r.report.filter((l) => l.status === "error").length;
  const base = { name: f.name, linesImported, linesRefused };
  if (r.errors.length > 0 || !r.policy) {
    const e = r.errors[0];
    return { ...base, stage: "import", reason: e ? `${e.code}: ${e.message}` : "no policy" };
  }
  const v = validatePolicy(r.policy);
  if (!v.ok) return { ...base, stage: "validate", reason: `${v.errors[0]!.code}: ${v.errors[0]!.message}` };
  const nft = renderNft(r.policy);
  if (!nft.ok) return { ...base, stage: "render", reason: `${nft.errors[0]!.code}: ${nft.errors[0]!.message}` };
  return { ...base, stage: "load", nft: nft.text };
}

/**
 * The two load rates: over all files, and over the files a host could be running, i.e. those
 * iptables-restore loads, given the ipsets they match (a file iptables refuses, such as a
 * template or a typo, is a refusal for Palisade too and is left out of the second).
 */
export function loadRates(outcomes: FileOutcome[]): {
  files: number;
  loaded: number;
  runnableFiles: number;
  runnableLoaded: number;
} {
  const loaded = (os: FileOutcome[]) => os.filter((o) => o.stage === "ok").length;
  const runnable = outcomes.filter((o) => o.iptables?.kind !== "refuses");
  return {
    files: outcomes.length,
    loaded: loaded(outcomes),
    runnableFiles: runnable.length,
    runnableLoaded: loaded(runnable),
  };
}

export function formatRates(outcomes: FileOutcome[]): string {
  const n = outcomes.length;
  const imported = outcomes.filter((o) => o.stage !== "import").length;
  const li = outcomes.reduce((s, o) => s + o.linesImported, 0);
  const lr = outcomes.reduce((s, o) => s + o.linesRefused, 0);
  const rates = loadRates(outcomes);
  const loaded = rates.loaded;
  const pct = (a: number, b: number) => (b === 0 ? "n/a" : `${((100 * a) / b).toFixed(1)} %`);
  return [
    ...outcomes.map(
      (o) =>
        `${o.stage === "ok" ? "ok  " : "FAIL"} ${o.name.padEnd(34)} ${String(o.linesImported).padStart(4)}/${o.linesImported + o.linesRefused} lines${o.reason ? `  [${o.stage}] ${o.reason.slice(0, 160)}` : ""}${o.iptables && o.iptables.kind !== "loads" ? `  (iptables ${o.iptables.kind}: ${o.iptables.reason.slice(0, 100)})` : ""}`,
    ),
    `files: ${n}; import without error: ${imported} (${pct(imported, n)}); import, render and load (nft -c): ${loaded} (${pct(loaded, n)}); lines imported: ${li}/${li + lr} (${pct(li, li + lr)})`,
    ...(outcomes.some((o) => o.iptables)
      ? [
          `of the ${rates.runnableFiles} files iptables-restore loads (given the ipsets they match): ${rates.runnableLoaded} load (${pct(rates.runnableLoaded, rates.runnableFiles)}); iptables-restore refuses the other ${n - rates.runnableFiles}`,
        ]
      : []),
  ].join("\n");
}
