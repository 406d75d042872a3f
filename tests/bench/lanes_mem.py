#!/usr/bin/env python3
"""lanes_mem.py -- what an idle lane costs (README, "Lanes"): real ri-core
processes on loopback. --edges N edges connect to one hub with `lanes = 1`,
then each edge is reloaded (SIGHUP) to `lanes = --lanes L`; the hub's and the
edges' RSS before and after, divided by the lanes added, is the memory per
idle lane. Repeated --runs times; prints the median and writes JSON.

Usage: tests/bench/lanes_mem.py [--build build] [--edges 4] [--lanes 16]
                                [--runs 3] [--json build/lanes-mem.json]"""
import argparse
import json
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
from harness import T, Ctl, EdgeSpec, Env, wait_until  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def lanes_up(ctl):
    """Live lanes over all edges, from the hub's status (the hub logs and
    counts an edge connected once, not per lane)."""
    return sum(e["lanes"] for e in ctl("status")["edges"])


def one_run(build, n_edges, lanes, idx):
    env = Env(build, f"lanes-mem-{idx}")
    try:
        specs = [EdgeSpec(f"edge-m{i}", [env.port()]) for i in range(n_edges)]
        sock = env.path("hub.sock")
        hub = env.hub(specs, max_lanes_per_edge=max(16, lanes), control_socket=sock)
        ctl = Ctl(sock)
        edges = [env.edge(hub, s, name=f"e{i}", lanes=1, lanes_max=max(lanes, 1))
                 for i, s in enumerate(specs)]
        wait_until(lambda: hub.count(r"edge edge-m\d+ connected") >= n_edges, T(30),
                   "every edge connected")
        # let allocations settle: every tunnel has sent its CONFIG
        for e in edges:
            e.wait_log(r"hub assigns 1 port", 20)
        h0 = rss_kib(hub.pid)
        e0 = sum(rss_kib(e.pid) for e in edges)
        for e in edges:
            with open(e.cfg_path) as f:
                cfg = f.read()
            with open(e.cfg_path, "w") as f:
                f.write(re.sub(r"lanes = 1;", f"lanes = {lanes};", cfg))
            env.reload(e)
        want = n_edges + n_edges * (lanes - 1)
        wait_until(lambda: lanes_up(ctl) >= want, T(60), f"{want} lanes connected")
        # a keepalive round on every lane would not change the picture;
        # measure once everything is idle
        h1 = rss_kib(hub.pid)
        e1 = sum(rss_kib(e.pid) for e in edges)
        added = n_edges * (lanes - 1)
        return {"hub_kib_per_lane": (h1 - h0) / added, "edge_kib_per_lane": (e1 - e0) / added,
                "hub_rss_kib": [h0, h1], "edges_rss_kib": [e0, e1], "lanes_added": added}
    finally:
        env.close()
        env.cleanup_dir()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--edges", type=int, default=4)
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    runs = [one_run(a.build, a.edges, a.lanes, i) for i in range(a.runs)]
    hub = statistics.median(r["hub_kib_per_lane"] for r in runs)
    edge = statistics.median(r["edge_kib_per_lane"] for r in runs)
    print(f"idle lane ({a.edges} edges, 1 -> {a.lanes} lanes each, median of {a.runs} runs): "
          f"hub {hub:.1f} KiB, edge {edge:.1f} KiB per lane")
    for r in runs:
        print(f"  run: hub {r['hub_kib_per_lane']:.1f} KiB, edge {r['edge_kib_per_lane']:.1f} "
              f"KiB per lane ({r['lanes_added']} lanes added; hub RSS {r['hub_rss_kib']} KiB)")
    out = a.json or os.path.join(a.build, "lanes-mem.json")
    with open(out, "w") as f:
        json.dump({"hub_kib_per_lane": hub, "edge_kib_per_lane": edge, "runs": runs}, f,
                  indent=1)
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
