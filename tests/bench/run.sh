#!/usr/bin/env bash
# make bench: installs the peers ri is compared with (as root, from Debian),
# then runs tests/bench/bench.py. Usage: tests/bench/run.sh [BUILD] [bench.py args...]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}; shift || true
if [ "$(id -u)" = 0 ]; then
  missing=""
  for p in sshd:openssh-server ssh:openssh-client stunnel4:stunnel4 haproxy:haproxy \
           openssl:openssl ip:iproute2; do
    command -v "${p%%:*}" >/dev/null || [ -x "/usr/sbin/${p%%:*}" ] || missing="$missing ${p#*:}"
  done
  if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi
cd "$top"
exec python3 tests/bench/bench.py --build "$build" "$@"
