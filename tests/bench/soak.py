#!/usr/bin/env python3
"""Soak: mixed traffic through a hub/edge pair for a long time (default 30
minutes), sampling memory and descriptors.

    python3 tests/bench/soak.py [--build build/san] [--minutes 30] [--json out.json]

Runs, all at once and for the whole time:
  * bulk:        8 MiB echoed end to end, again and again, checked by SHA-256
  * interactive: a 64-byte ping-pong every 10 ms on one long-lived stream
  * churn:       short connections (connect, 1 KiB echoed, close), ~50/s
  * resets:      a client that sends and then aborts (TCP reset), ~5/s
  * reloads:     SIGHUP to hub and edge every minute, adding or removing a
                 third port in turn
and samples RSS and open descriptors of both processes every 10 s.

Passes when no transfer failed or came back corrupted, no sanitizer report
appeared, and memory and descriptors stay flat: the median of the last
fifth of the samples is within 25 % (memory) and 20 descriptors of the
median of the second fifth (the first fifth is warm-up). Prints a table
and, with --json, writes every sample. Exit 0 on pass, 1 otherwise.
"""
import argparse
import hashlib
import json
import os
import signal
import socket
import statistics
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import harness  # noqa: E402
from harness import EdgeSpec, Env, SANITIZER_RE, pump, recv_exact, rss_mib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build/san")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    harness.raise_nofile(65536)
    env = Env(a.build, "soak")
    stop = threading.Event()
    stats = {k: 0 for k in ("bulk_ok", "bulk_bad", "ping_ok", "ping_bad", "churn_ok",
                            "churn_bad", "resets", "reloads")}
    errors = []
    lock = threading.Lock()

    def bump(k, err=None):
        with lock:
            stats[k] += 1
            if err and len(errors) < 50:
                errors.append(f"{time.strftime('%H:%M:%S')} {k}: {err}")

    try:
        p1, p2, p3 = env.ports(3)
        for p in (p1, p2, p3):
            env.upstream(p)
        spec = EdgeSpec("edge-soak", [p1, p2])
        hub = env.hub([spec])
        edge = env.edge(hub, spec)

        def bulk():
            while not stop.is_set():
                try:
                    r = pump([("127.0.0.2", p1)], [os.urandom(8 << 20)], timeout_s=120)[0]
                    ok = r["recv_sha"] == r["sent_sha"] and not r["error"]
                    bump("bulk_ok" if ok else "bulk_bad", None if ok else str(r))
                except Exception as e:
                    bump("bulk_bad", repr(e))

        def interactive():
            while not stop.is_set():
                try:
                    c = socket.create_connection(("127.0.0.2", p2), timeout=10)
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    while not stop.is_set():
                        msg = os.urandom(64)
                        c.sendall(msg)
                        if recv_exact(c, 64) != msg:
                            bump("ping_bad", "echo differs")
                        else:
                            bump("ping_ok")
                        time.sleep(0.01)
                    c.close()
                except Exception as e:
                    bump("ping_bad", repr(e))
                    time.sleep(0.2)

        def churn():
            while not stop.is_set():
                try:
                    c = socket.create_connection(("127.0.0.2", p2), timeout=10)
                    msg = os.urandom(1024)
                    c.sendall(msg)
                    ok = recv_exact(c, 1024) == msg
                    c.close()
                    bump("churn_ok" if ok else "churn_bad", None if ok else "echo differs")
                except Exception as e:
                    bump("churn_bad", repr(e))
                time.sleep(0.02)

        def resets():
            while not stop.is_set():
                try:
                    c = socket.create_connection(("127.0.0.2", p1), timeout=10)
                    c.sendall(os.urandom(4096))
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    c.close()
                    bump("resets")
                except Exception as e:
                    bump("resets", repr(e))
                time.sleep(0.2)

        threads = [threading.Thread(target=f, daemon=True)
                   for f in (bulk, interactive, churn, churn, resets)]
        for t in threads:
            t.start()
        samples = []
        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        next_reload = t0 + 60
        third = False
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_reload:
                third = not third
                env.rewrite_hub(hub, [EdgeSpec(spec.id, [p1, p2, p3] if third else [p1, p2],
                                               secret=spec.secret)])
                env.reload(hub)
                env.reload(edge)
                bump("reloads")
                next_reload += 60
            if not (hub.alive() and edge.alive()):
                errors.append("a process died")
                break
            samples.append({"t": round(now - t0, 1), "hub_rss": rss_mib(hub.pid),
                            "edge_rss": rss_mib(edge.pid), "hub_fds": hub.fds(),
                            "edge_fds": edge.fds(), **dict(stats)})
            s = samples[-1]
            print(f"{s['t']:7.0f}s hub {s['hub_rss']:6.1f} MiB {s['hub_fds']:4d} fds | edge "
                  f"{s['edge_rss']:6.1f} MiB {s['edge_fds']:4d} fds | bulk {stats['bulk_ok']} "
                  f"ping {stats['ping_ok']} churn {stats['churn_ok']} resets {stats['resets']}"
                  f" reloads {stats['reloads']} | failures {stats['bulk_bad']}/"
                  f"{stats['ping_bad']}/{stats['churn_bad']}", flush=True)
            stop.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
        problems = list(errors)
        for p in (hub, edge):
            m = SANITIZER_RE.search(p.log())
            if m:
                problems.append(f"sanitizer report in {p.name}'s log")
        if stats["bulk_bad"] or stats["ping_bad"] or stats["churn_bad"]:
            problems.append(f"failed transfers: bulk {stats['bulk_bad']}, ping "
                            f"{stats['ping_bad']}, churn {stats['churn_bad']}")
        n = len(samples)
        if n >= 10:
            early, late = samples[n // 5: 2 * n // 5], samples[4 * n // 5:]
            for k, lim_rel, lim_abs in (("hub_rss", 0.25, 4), ("edge_rss", 0.25, 4),
                                        ("hub_fds", 0, 20), ("edge_fds", 0, 20)):
                e = statistics.median(x[k] for x in early)
                l = statistics.median(x[k] for x in late)
                grew = l - e > max(lim_rel * e, lim_abs)
                print(f"{k:9s} early median {e:8.1f}  late median {l:8.1f}  "
                      f"{'GREW' if grew else 'flat'}")
                if grew:
                    problems.append(f"{k} grew from {e:.1f} to {l:.1f}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"minutes": a.minutes, "build": a.build, "stats": stats,
                           "samples": samples, "problems": problems}, f, indent=1)
        print(json.dumps(stats))
        for pr in problems:
            print("PROBLEM:", pr)
        print("soak: " + ("PASS" if not problems else "FAIL"))
        return 0 if not problems else 1
    finally:
        stop.set()
        for pr in env.close():
            print("teardown:", pr)


if __name__ == "__main__":
    sys.exit(main())
