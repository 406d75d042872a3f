#!/usr/bin/env python3
"""scale.py -- many edges on one hub, many streams on one edge (issue 10,
section 4), at full size; `make bench-scale` runs it alone, `make bench`
after bench.py. The suite runs the same scenarios smaller
(tests/integ/test_scale.py).

  edges    --edges N (1000) simulated edges (build/ri-edgesim: the real tunnel
           code, one event loop) on one hub: the time until all are connected
           and carried a stream, the hub's RSS per idle edge; then kill -9 of
           the hub, a restart, and the time until every edge carries traffic
           again (goal: 30 s), with the per-edge distribution.
  fdlimit  one ri-core edge under --nofile (20000, this machine's hard limit
           per process) filled with streams by `ri-loadgen hold` until it
           refuses one: streams held, memory per stream (edge and hub user
           space, kernel TCP memory), the edge's CPU while clients keep
           arriving at the limit, its near-limit warning, the close of all.
           As root the hub and the echo target get twice the limit, so the
           edge's is the one reached.

Usage: tests/bench/scale.py [--build build] [--edges 1000] [--nofile 20000]
                            [--only edges|fdlimit] [--json build/scale.json]
Prints a table; writes the figures as JSON."""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
from harness import EdgeSpec, Env, Hub, Proc, check, raise_nofile, wait_until  # noqa: E402
from fleet import (NEAR_LIMIT, REFUSING, cpu_secs, edge_under_nofile, many_edges,  # noqa: E402
                   rss_kib, served_again, try_client)


def say(msg):
    print(f"  {msg}", flush=True)


def kernel_tcp_kib():
    """TCP buffer memory of the whole machine (/proc/net/sockstat), KiB."""
    with open("/proc/net/sockstat") as f:
        m = re.search(r"TCP: .* mem (\d+)", f.read())
    return int(m.group(1)) * os.sysconf("SC_PAGE_SIZE") / 1024.0 if m else 0.0


def bench_edges(env, a):
    r = many_edges(env, a.edges, connect_timeout_s=300, restart_timeout_s=300, say=say)
    r.pop("hub")
    return r


def bench_fdlimit(env, a):
    big = ["prlimit", f"--nofile={2 * a.nofile + 1000}"]
    nofile = a.nofile
    if subprocess.run([*big, "true"], capture_output=True).returncode != 0:
        # the hub and the echo target hold one descriptor per stream too and
        # cannot go past the hard limit: the edge gets a little less, so
        # that its limit is the one reached
        big, nofile = [], a.nofile - 200
        say(f"cannot raise the hard open-file limit: the edge runs under {nofile}, the hub "
            f"and the echo target under {a.nofile}")
    lg = os.path.join(env.build, "ri-loadgen")
    check(os.access(lg, os.X_OK), f"{lg} not built (make bench builds it)")
    p = env.port()
    target = Proc(env, "echo", [*big, lg, "serve", "--host", "127.0.0.1", "--echo", str(p)])
    wait_until(lambda: "READY" in target.log(), 20, "the echo target")
    spec = EdgeSpec("edge-fd", [p])
    hub_port = env.port()
    hcfg = env.write("hub.cfg", env.hub_config(hub_port, [spec]))
    hub = env.start_core("hub", hcfg, cls=Hub, wrap=big)
    hub.port = hub_port
    hub.wait_log(r"hub: listening on \S+:%d " % hub_port)
    edge = edge_under_nofile(env, hub_port, spec, nofile)
    time.sleep(0.5)
    e0, h0, k0 = rss_kib(edge.pid), rss_kib(hub.pid), kernel_tcp_kib()
    say(f"edge under nofile {nofile}: filling it with streams")
    t0 = time.monotonic()
    hold = subprocess.Popen([*big, lg, "hold", "--to", f"127.0.0.2:{p}", "--count",
                             str(a.nofile + 100)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        held = None
        for line in hold.stdout:
            m = re.match(r"HELD (\d+)", line)
            if m:
                held = int(m.group(1))
                break
        fill_s = time.monotonic() - t0
        check(held, "ri-loadgen hold said nothing")
        time.sleep(1.0)
        e1, h1, k1 = rss_kib(edge.pid), rss_kib(hub.pid), kernel_tcp_kib()
        say(f"{held} streams held after {fill_s:.1f} s; edge RSS {e1 / 1024:.1f} MiB")
        warn = re.search(NEAR_LIMIT, edge.log())
        check(warn, "no near-limit warning in the edge's log")
        refused_by = "edge" if re.search(REFUSING, edge.log()) else (
            "hub" if re.search(r"hub: refusing new streams", hub.log()) else "neither")
        # at the limit: clients keep coming for a few seconds
        c0, w0 = cpu_secs(edge.pid), time.monotonic()
        refused = served = 0
        while time.monotonic() - w0 < 5:
            c = try_client(env, "127.0.0.2", p, b"past the limit\n")
            if c is None:
                refused += 1
            else:
                served += 1
                c.close()
            time.sleep(0.01)
        cpu, wall = cpu_secs(edge.pid) - c0, time.monotonic() - w0
        check(edge.alive(), "the edge died at its limit")
        # all close
        c1 = time.monotonic()
        hold.stdin.close()
        hold.wait(120)
        wait_until(lambda: len(os.listdir(f"/proc/{edge.pid}/fd")) < 64, 120,
                   "the edge to close its streams")
        close_s = time.monotonic() - c1
        served_again(env, "127.0.0.2", p)
        return {
            "nofile": nofile,
            "streams_held": held,
            "refused_by": refused_by,
            "fill_s": round(fill_s, 1),
            "edge_rss_kib_per_stream": round((e1 - e0) / held, 2),
            "hub_rss_kib_per_stream": round((h1 - h0) / held, 2),
            "kernel_tcp_kib_per_stream": round((k1 - k0) / held, 2),
            "edge_rss_mib": round(e1 / 1024, 1),
            "at_limit_clients_refused": refused,
            "at_limit_clients_served": served,
            "at_limit_edge_cpu_pct": round(100 * cpu / wall, 1),
            "near_limit_warnings": edge.count(NEAR_LIMIT),
            "warning": warn.group(0),
            "close_all_s": round(close_s, 1),
            "edge_alive": edge.alive(),
        }
    finally:
        if hold.poll() is None:
            hold.kill()
            hold.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--edges", type=int, default=1000)
    ap.add_argument("--nofile", type=int, default=20000)
    ap.add_argument("--only", choices=("edges", "fdlimit"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    raise_nofile(4 * a.edges + 1000)
    out = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    for name, fn in (("edges", bench_edges), ("fdlimit", bench_fdlimit)):
        if a.only and a.only != name:
            continue
        print(f"scale: {name}", flush=True)
        env = Env(a.build, f"scale-{name}")
        ok = False
        try:
            out[name] = fn(env, a)
            ok = True
        finally:
            problems = env.close()
            if not ok:
                print(env.report(), file=sys.stderr)
            if ok and not problems:
                env.cleanup_dir()
    e, f = out.get("edges"), out.get("fdlimit")
    print()
    if e:
        print(f"{e['edges']} edges on one hub")
        print(f"  all connected and carried a stream     {e['connect_all_s']:.2f} s "
              f"(per edge p50 {e['connect_traffic_s']['p50']:.2f} / p99 "
              f"{e['connect_traffic_s']['p99']:.2f} / max {e['connect_traffic_s']['max']:.2f} s)")
        print(f"  hub RSS per idle edge                  {e['hub_rss_per_idle_edge_kib']:.1f} KiB")
        t = e["restart_traffic_s"]
        print(f"  after kill -9 + restart: all back in   {e['restart_all_back_s']:.2f} s from the "
              f"restart ({e['restart_all_back_since_kill_s']:.2f} s from the kill); per edge from "
              f"its loss p50 {t['p50']:.2f} / p90 {t['p90']:.2f} / p99 {t['p99']:.2f} / max "
              f"{t['max']:.2f} s; goal 30 s: {'met' if e['restart_all_back_s'] <= 30 else 'MISSED'}")
        print(f"  connect attempts {e['connect_attempts']}, handshakes {e['handshakes']}, "
              f"streams ok {e['streams_ok']}, failed {e['streams_failed']}")
    if f:
        print(f"one edge under an open-file limit of {f['nofile']}")
        print(f"  streams held                           {f['streams_held']} (refused by "
              f"{f['refused_by']}; filled in {f['fill_s']} s)")
        print(f"  memory per stream                      edge {f['edge_rss_kib_per_stream']} KiB, "
              f"hub {f['hub_rss_kib_per_stream']} KiB, kernel TCP "
              f"{f['kernel_tcp_kib_per_stream']} KiB")
        print(f"  at the limit                           {f['at_limit_clients_refused']} clients "
              f"refused, {f['at_limit_clients_served']} served; edge CPU "
              f"{f['at_limit_edge_cpu_pct']} %; {f['near_limit_warnings']} near-limit warning")
        print(f"  all streams closed in                  {f['close_all_s']} s; edge alive: "
              f"{f['edge_alive']}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
