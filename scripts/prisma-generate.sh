#!/usr/bin/env bash
# `prisma generate` needs no schema engine, but the CLI insists on finding one; these
# machines cannot download it, so point it at any file (the Prisma docs' offline escape).
# Its banner and tips are printed only when it fails: `npm start` builds first (prestart),
# and the server's JSON log lines must be the only thing on its stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(PRISMA_SCHEMA_ENGINE_BINARY="${PRISMA_SCHEMA_ENGINE_BINARY:-/bin/true}" PRISMA_HIDE_UPDATE_MESSAGE=1 npx --no-install prisma generate 2>&1) || {
  printf '%s\n' "$out" >&2
  exit 1
}
