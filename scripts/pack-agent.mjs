// `npm run pack:agent`: the agent as its own artifact, dist/palisade-agent-<version>.tgz.
// It holds what a host needs besides Node (>= 20.19) and the system's nft/ip/tcpdump/
// conntrack: the bundle (dist/agent/palisade-agent.cjs, built by `node scripts/build.mjs
// agent`) and its render worker (palisade-agent-render.cjs, loaded from beside it), the .proto its protocol code is generated from (for reference), a package.json (its version; the bundle finds its files
// next to it), the systemd unit and an install script. No node_modules.
//
//   palisade-agent-<version>/
//     palisade-agent.cjs  palisade-agent-render.cjs  package.json  proto/palisade/v1/agent.proto
//     palisade-agent.service  install.sh  README.md
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const bundle = join(ROOT, "dist/agent/palisade-agent.cjs");
const renderWorker = join(ROOT, "dist/agent/palisade-agent-render.cjs");
if (!existsSync(bundle) || !existsSync(renderWorker)) {
  console.error(`${bundle} is missing: run \`node scripts/build.mjs agent\` (npm run pack:agent does)`);
  process.exit(1);
}

const name = `palisade-agent-${pkg.version}`;
const stage = mkdtempSync(join(tmpdir(), "palisade-pack-"));
const top = join(stage, name);
try {
  mkdirSync(join(top, "proto/palisade/v1"), { recursive: true });
  copyFileSync(bundle, join(top, "palisade-agent.cjs"));
  chmodSync(join(top, "palisade-agent.cjs"), 0o755);
  copyFileSync(renderWorker, join(top, "palisade-agent-render.cjs"));
  chmodSync(join(top, "palisade-agent-render.cjs"), 0o644);
  copyFileSync(join(ROOT, "proto/palisade/v1/agent.proto"), join(top, "proto/palisade/v1/agent.proto"));
  copyFileSync(join(ROOT, "deploy/palisade-agent.service"), join(top, "palisade-agent.service"));
  copyFileSync(join(ROOT, "deploy/install-agent.sh"), join(top, "install.sh"));
  chmodSync(join(top, "install.sh"), 0o755);
  writeFileSync(
    join(top, "package.json"),
    JSON.stringify(
      {
        name: "palisade-agent",
        version: pkg.version,
        description: "Palisade host agent (standalone bundle): applies nftables rulesets, ships accounting.",
        license: pkg.license,
        type: "module",
        private: true,
        bin: { "palisade-agent": "palisade-agent.cjs" },
        engines: pkg.engines,
      },
      null,
      2,
    ) + "\n",
  );
  writeFileSync(
    join(top, "README.md"),
    [
      `# ${name}`,
      "",
      "The Palisade host agent as one file. Needs Node >= 20.19 and nft (nftables); ip, tcpdump",
      "and conntrack for log events. Nothing else: no npm install.",
      "",
      "    sudo ./install.sh --server api.example.net:50051 --enroll-token TOKEN   # installs and starts it",
      "    ./palisade-agent.cjs --help                                            # flags and their PALISADE_* twins",
      "",
      "install.sh puts the files in /opt/palisade-agent, the unit in /etc/systemd/system, the",
      "settings in /etc/palisade/agent.env (0600). The agent writes only to its state directory,",
      "/var/lib/palisade.",
      "",
    ].join("\n"),
  );
  mkdirSync(join(ROOT, "dist"), { recursive: true });
  const out = join(ROOT, "dist", `${name}.tgz`);
  // Reproducible: sorted names, fixed owner and time.
  execFileSync("tar", [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=@0",
    "-czf",
    out,
    "-C",
    stage,
    name,
  ]);
  console.log(out);
} finally {
  rmSync(stage, { recursive: true, force: true });
}
