#!/usr/bin/env bash
# Runs the whole suite with Node's own test runner: unit (pure code), integration
# (real PostgreSQL + Redis), kernel (real nftables inside throwaway network namespaces).
# Pass a directory or files to run a subset: `npm test -- test/unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests that spawn bin/palisade run dist/ (the built code that ships): build it from the
# sources under test first (prisma generate + esbuild, a few seconds).
npm run --silent build >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(test)
mapfile -t files < <(find "${targets[@]}" -name '*.test.ts' | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no test files under: ${targets[*]}" >&2; exit 1; fi
# Kernel tests create network namespaces; one file at a time keeps them independent.
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
