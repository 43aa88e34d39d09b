#!/usr/bin/env bash
# Runs the benchmarks: every bench/*.ts (or the files given) with `node --import tsx`,
# one after the other. Figures go to stdout, progress lines to stderr. Benches print
# figures only; a bench exits non-zero only when it could not measure (e.g. no root).
# `npm run bench` runs all; `npm run bench -- bench/engine-apply.ts` runs one.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find bench -maxdepth 1 -name '*.ts' | sort); fi
if [ ${#files[@]} -eq 0 ]; then echo "no bench files" >&2; exit 1; fi
status=0
for f in "${files[@]}"; do
  echo "=== $f ($(date -u +%FT%TZ))"
  node --import tsx "$f" || { echo "=== $f FAILED (exit $?)" >&2; status=1; }
  echo
done
exit $status
