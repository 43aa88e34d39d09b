// Builds the web console (console/) into dist/console with esbuild: one ES module
// bundle with uPlot inside, one stylesheet, index.html. No CDN: the API serves these
// files itself (src/api/routes/console.ts). `npm run build:console`.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export async function buildConsole(out = join(root, "dist/console")): Promise<void> {
  await mkdir(out, { recursive: true });
  await build({
    entryPoints: { app: join(root, "console/src/main.ts"), "app-style": join(root, "console/src/style.css") },
    bundle: true,
    format: "esm",
    target: ["chrome100", "firefox100", "safari15"],
    minify: true,
    sourcemap: true,
    outdir: out,
    logLevel: "warning",
  });
  await copyFile(join(root, "console/index.html"), join(out, "index.html"));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await buildConsole();
