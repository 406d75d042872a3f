#!/usr/bin/env bash
# Starts an ri hub + edge on loopback for an external yardstick such as
# tunnelbench.py (a developer cross-check; make bench uses bench.py instead).
# usage: ri-pair.sh TMPDIR BULK_ENTRY BULK_TARGET ECHO_ENTRY ECHO_TARGET [BUILD]
# The edge listens on 127.0.0.2:<target port> (the hub forwards edge port P
# to 127.0.0.1:P), so it announces its entries with an ENTRY line. No header
# injector: iperf3 cannot skip a PROXY line.
set -euo pipefail
tmp=$1 bulk_target=$3 echo_target=$5 build=${6:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$top/$build/ri-core
hub_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$tmp/hub.cfg" <<CFG
role = "hub"; log_level = "warn"; plugin_dir = "$top/$build/plugins";
plugins = ( { name = "auth_secret"; } );
hub = { listen = "127.0.0.1:$hub_port"; target_host = "127.0.0.1"; state_dir = "";
  edges = ( { id = "bench"; secret = "bench-secret-0123456789"; listen_ports = [ $bulk_target, $echo_target ]; } ); };
CFG
cat > "$tmp/edge.cfg" <<CFG
role = "edge"; log_level = "info"; plugin_dir = "$top/$build/plugins";
plugins = ( { name = "auth_secret"; }, { name = "listen_tcp"; } );
edge = { hub_host = "127.0.0.1"; hub_port = $hub_port; edge_id = "bench";
  secret = "bench-secret-0123456789"; bind_address = "127.0.0.2"; };
CFG
"$bin" -c "$tmp/hub.cfg" 2> "$tmp/hub.log" & hub=$!
for _ in $(seq 200); do   # the edge would retry anyway; this saves a backoff step
  python3 -c "import socket,sys;socket.create_connection(('127.0.0.1',$hub_port),0.2)" 2>/dev/null && break
  sleep 0.05
done
"$bin" -c "$tmp/edge.cfg" 2> "$tmp/edge.log" & edge=$!
trap 'kill $hub $edge 2>/dev/null; wait 2>/dev/null; exit 0' TERM INT EXIT
for _ in $(seq 200); do
  [ "$(grep -c 'listening on 127.0.0.2 port' "$tmp/edge.log" || true)" -ge 2 ] && break
  sleep 0.05
done
echo "ENTRY bulk=127.0.0.2:$bulk_target echo=127.0.0.2:$echo_target"
wait
