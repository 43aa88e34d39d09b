#!/bin/sh
# Installs the Palisade agent from its unpacked tarball (shipped there as install.sh):
#
#   sudo ./install.sh [--server HOST:PORT] [--enroll-token TOKEN] [--prefix DIR] [--no-start]
#
# Files go to PREFIX (default /opt/palisade-agent, read-only to the agent), the unit to
# /etc/systemd/system/palisade-agent.service (ExecStart= names the node found on PATH),
# settings to /etc/palisade/agent.env (0600). The agent runs as the system user
# `palisade` and writes only to /var/lib/palisade (StateDirectory=). With DESTDIR set,
# everything goes below it and no user is created and nothing is started (packaging, tests).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=/opt/palisade-agent
server=""
token=""
start=1
die() { echo "install.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --server) [ $# -ge 2 ] || die "--server needs HOST:PORT"; server=$2; shift 2 ;;
    --enroll-token) [ $# -ge 2 ] || die "--enroll-token needs a token"; token=$2; shift 2 ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
dest=${DESTDIR:-}
[ -n "$dest" ] || [ "$(id -u)" = 0 ] || die "run as root (or set DESTDIR)"

node=$(command -v node) || die "node not found on PATH: the agent needs Node >= 20.19"
"$node" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
  || die "Node >= 20.19 needed, found $("$node" --version)"
for tool in nft ip tcpdump conntrack setpriv; do
  command -v "$tool" >/dev/null 2>&1 || echo "install.sh: warning: $tool not found (nft is required; the others for log events)" >&2
done

install -d -m 0755 "$dest$prefix" "$dest$prefix/proto/palisade/v1" "$dest/etc/systemd/system" "$dest/etc/palisade"
# The bundles were ES modules (.mjs) before they became CommonJS: an upgrade drops the old files.
rm -f "$dest$prefix/palisade-agent.mjs" "$dest$prefix/palisade-agent-render.mjs"
install -m 0755 "$here/palisade-agent.cjs" "$dest$prefix/palisade-agent.cjs"
install -m 0644 "$here/palisade-agent-render.cjs" "$dest$prefix/palisade-agent-render.cjs"
install -m 0644 "$here/package.json" "$here/README.md" "$dest$prefix/"
install -m 0644 "$here/proto/palisade/v1/agent.proto" "$dest$prefix/proto/palisade/v1/agent.proto"
sed -e "s#/opt/palisade-agent#$prefix#g" -e "s#^ExecStart=/usr/bin/env node #ExecStart=$node #" \
  "$here/palisade-agent.service" > "$dest/etc/systemd/system/palisade-agent.service"
chmod 0644 "$dest/etc/systemd/system/palisade-agent.service"

env_file="$dest/etc/palisade/agent.env"
if [ -n "$server" ] || [ -n "$token" ]; then
  old=$(umask); umask 077
  tmp="$env_file.tmp.$$"
  { [ -f "$env_file" ] && grep -v -e '^PALISADE_SERVER=' -e '^PALISADE_ENROLL_TOKEN=' "$env_file" || true
    [ -n "$server" ] && echo "PALISADE_SERVER=$server"
    [ -n "$token" ] && echo "PALISADE_ENROLL_TOKEN=$token"
  } > "$tmp"
  mv "$tmp" "$env_file"
  umask "$old"
fi

if [ -n "$dest" ]; then
  echo "installed below $dest"
  exit 0
fi
id palisade >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin palisade
if [ "$start" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl enable --now palisade-agent
  echo "palisade-agent started: journalctl -u palisade-agent"
else
  echo "installed; start with: systemctl enable --now palisade-agent"
fi
