#!/usr/bin/env bash
# Benchmark: ri beside the tunnels tunnelbench.py knows (raw, haproxy, ssh -L,
# stunnel), all measured in one run so every figure is a ratio on the same
# machine at the same time. Needs iperf3, openssh-server, stunnel4, haproxy
# (installed here when root). Usage: tests/bench/run.sh [BUILD] [tunnelbench args...]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}; shift || true
bench=$top/../shared/bench/tunnelbench.py
[ -f "$bench" ] || { echo "tunnelbench.py not found at $bench" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then
  missing=""
  for p in iperf3:iperf3 sshd:openssh-server ssh:openssh-client stunnel4:stunnel4 haproxy:haproxy; do
    command -v "${p%%:*}" >/dev/null || [ -x "/usr/sbin/${p%%:*}" ] || missing="$missing ${p#*:}"
  done
  [ -z "$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }
fi
cd "$top"
exec python3 "$bench" --peers raw,haproxy,ssh,stunnel \
  --tunnel ri="tests/bench/ri-pair.sh {tmp} {bulk_entry} {bulk_target} {echo_entry} {echo_target} $build" "$@"
