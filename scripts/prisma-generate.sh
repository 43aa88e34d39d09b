#!/usr/bin/env bash
# `prisma generate` needs no schema engine, but the CLI insists on finding one; these
# machines cannot download it, so point it at any file (the Prisma docs' offline escape).
set -euo pipefail
cd "$(dirname "$0")/.."
PRISMA_SCHEMA_ENGINE_BINARY="${PRISMA_SCHEMA_ENGINE_BINARY:-/bin/true}" npx --no-install prisma generate
