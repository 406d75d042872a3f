#!/usr/bin/env python3
"""restarts.py -- what clients see while ri restarts, upgrades or loses its hub.

A hub and an edge on loopback (handover_socket set on both) with nginx
behind the hub (`listen ... proxy_protocol`, answering every request with
the client address it read from the PROXY line). Clients open new HTTP
connections at a steady rate (--rate per second) against the edge while one
of these happens:

  hub-restart   SIGTERM to the hub, a new hub started at once (no handover)
  hub-upgrade   a new hub binary (a copy of ri-core at another path) started
                with the same config: it takes the tunnel socket over
  edge-upgrade  a new edge process with the same config takes the public
                listeners over
  hub-down-3    the hub killed (SIGKILL), started again 3 s later
  hub-down-60   the same with 60 s (clients held past hold_secs fail)

A request that is inside the hub when it is killed is lost with it (the
bytes were sent; nothing can replay them): those are counted apart as
"in flight at the kill". Each client thread waits for its answer, so during
a long outage each of the 8 threads has one held client at a time.

For each: requests, failures (with reasons), the slowest request, and the
time from the hub's return to the edge's first stream (the outages).
Usage: tests/bench/restarts.py [--build build] [--rate 200] [--only a,b]."""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (process helpers)

NGINX_MODULES = "/usr/lib/nginx/modules"


class Load:
    """New HTTP connections at `rate` per second from a few threads."""

    def __init__(self, addr, rate, threads=8):
        self.addr, self.interval = addr, threads / float(rate)
        self.ok, self.failed, self.slowest = 0, [], 0.0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.ths = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.ths:
            t.start()

    def _one(self):
        t0 = time.monotonic()
        c = socket.create_connection(self.addr, timeout=30)
        c.settimeout(30)
        c.sendall(b"GET / HTTP/1.1\r\nHost: ri\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
        c.close()
        if not data.startswith(b"HTTP/1.1 200") or b"127.0.0." not in data:
            raise ValueError(f"answer {data[:60]!r}")
        return time.monotonic() - t0

    def _run(self):
        nxt = time.monotonic()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                dt = self._one()
                with self.lock:
                    self.ok += 1
                    self.slowest = max(self.slowest, dt)
            except (OSError, ValueError) as e:
                with self.lock:
                    self.failed.append((t0, type(e).__name__ + ": " + str(e)[:60]))
            nxt += self.interval
            time.sleep(max(0.0, nxt - time.monotonic()))

    def stop(self):
        self._stop.set()
        for t in self.ths:
            t.join(60)


class Site:
    def __init__(self, tmp, build, port, hold_secs):
        self.tmp, self.port = tmp, port
        self.core = os.path.join(bench.ROOT, build, "ri-core")
        self.hub_port = bench.free_port()
        secret = os.urandom(16).hex()
        plug = os.path.join(bench.ROOT, build, "plugins")
        self.hub_cfg = self._write("hub.cfg", f'''role = "hub"; plugin_dir = "{plug}";
handover_socket = "{tmp}/hub.handover";
plugins = ( {{ name = "auth_secret"; }}, {{ name = "header_proxy_v1"; }} );
hub = {{ listen = "127.0.0.1:{self.hub_port}"; target_host = "127.0.0.1"; drain_timeout_secs = 30; state_dir = "";
  edges = ( {{ id = "bench"; secret = "{secret}"; listen_ports = [ {port} ]; }} ); }};
''')
        self.edge_cfg = self._write("edge.cfg", f'''role = "edge"; plugin_dir = "{plug}";
handover_socket = "{tmp}/edge.handover";
plugins = ( {{ name = "auth_secret"; }}, {{ name = "listen_tcp"; }} );
edge = {{ hub_host = "127.0.0.1"; hub_port = {self.hub_port}; edge_id = "bench";
  secret = "{secret}"; bind_address = "127.0.0.2"; hold_secs = {hold_secs}; }};
''')
        self.n = 0

    def _write(self, name, text):
        path = os.path.join(self.tmp, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def start(self, what, core=None):
        self.n += 1
        log = os.path.join(self.tmp, f"{what}-{self.n}.log")
        cfg = self.hub_cfg if what == "hub" else self.edge_cfg
        return bench.spawn([core or self.core, "-c", cfg], log), log


def wait_log(path, text, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path) as f:
                if text in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{path}: no '{text}' within {timeout}s")


def first_stream_after(load, t_hub_back):
    """Seconds from the hub's return until a request succeeds again."""
    ok0 = load.ok
    while load.ok == ok0:
        time.sleep(0.005)
    return time.monotonic() - t_hub_back


def scenario(name, site, rate, upgrade_core):
    hub, hlog = site.start("hub")
    wait_log(hlog, "hub: listening on")
    edge, elog = site.start("edge")
    wait_log(elog, "listening on 127.0.0.2")
    load = Load(("127.0.0.2", site.port), rate)
    time.sleep(2)
    back = t_kill = None
    procs = [hub, edge]
    if name == "hub-restart":
        hub.send_signal(signal.SIGTERM)
        h2, l2 = site.start("hub")
        procs.append(h2)
        wait_log(l2, "hub: listening on")
    elif name == "hub-upgrade":
        h2, l2 = site.start("hub", upgrade_core)
        procs.append(h2)
        wait_log(l2, "took the listening socket")
    elif name == "edge-upgrade":
        e2, l2 = site.start("edge", upgrade_core)
        procs.append(e2)
        wait_log(l2, "connected to hub")
    elif name.startswith("hub-down-"):
        secs = float(name.rsplit("-", 1)[1])
        t_kill = time.monotonic()
        hub.send_signal(signal.SIGKILL)
        time.sleep(secs)
        h2, l2 = site.start("hub")
        procs.append(h2)
        wait_log(l2, "hub: listening on")
        back = first_stream_after(load, time.monotonic())
    time.sleep(4)
    load.stop()
    for p in reversed(procs):
        bench.stop(p)
    total = load.ok + len(load.failed)
    reasons = {}
    for t0, f in load.failed:
        # a request already inside the hub when it is killed cannot be saved
        why = "in flight at the kill" if t_kill is not None and t0 < t_kill else f.split(":")[0]
        reasons[why] = reasons.get(why, 0) + 1
    return {"requests": total, "failed": len(load.failed), "reasons": reasons,
            "slowest_s": round(load.slowest, 3),
            "back_after_s": round(back, 3) if back is not None else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--hold-secs", type=float, default=10)
    ap.add_argument("--only", default="hub-restart,hub-upgrade,edge-upgrade,hub-down-3,hub-down-60")
    a = ap.parse_args()
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        sys.exit("nginx is not installed")
    bench.LOADGEN = "-"  # not used here
    tmp = tempfile.mkdtemp(prefix="ri-restarts-")
    port = bench.free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    ngcfg = os.path.join(tmp, "nginx.conf")
    with open(ngcfg, "w") as f:
        f.write(f"""{user}
daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        location / {{ return 200 "ok $proxy_protocol_addr\\n"; }}
    }}
}}
""")
    bench.spawn([exe, "-p", tmp, "-c", ngcfg, "-e", f"{tmp}/nginx-error.log"])
    upgrade_core = os.path.join(tmp, "ri-core.new")  # "a new binary": a copy elsewhere
    shutil.copy(os.path.join(bench.ROOT, a.build, "ri-core"), upgrade_core)
    rows = {}
    for name in a.only.split(","):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        site = Site(d, a.build, port, a.hold_secs)
        print(f"  {name} ...", file=sys.stderr, flush=True)
        rows[name] = scenario(name, site, a.rate, upgrade_core)
    bench.stop_all()
    print(f"\n{time.strftime('%Y-%m-%d')}, {a.rate} new HTTP connections/s through ri to nginx, "
          f"hold_secs {a.hold_secs:g}\n")
    print("| event | requests | failed | slowest request | first stream after the hub's return |")
    print("|-------|---------:|-------:|----------------:|------------------------------------:|")
    for n, r in rows.items():
        why = ", ".join(f"{k} {v}" for k, v in r["reasons"].items())
        print(f"| {n} | {r['requests']} | {r['failed']}{' (' + why + ')' if why else ''} | "
              f"{r['slowest_s']:.2f} s | "
              f"{'%.2f s' % r['back_after_s'] if r['back_after_s'] is not None else '-'} |")
    print(f"\nlogs in {tmp}")


if __name__ == "__main__":
    main()
