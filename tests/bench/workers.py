#!/usr/bin/env python3
"""workers.py -- how a hub's work divides over its worker threads.

One hub, --edges edge processes (each `lanes = 1`, its own bind address
127.0.0.N, all forwarding one port to a ri-loadgen source), and
--streams downloads through every edge at once for --secs seconds. For
each `workers` value (--workers, e.g. 1,2; the same run, one after the
other) it reports:

  Gbit/s              all downloads together
  hub CPU s/GB        the hub's CPU time (every thread) per GB carried
  per thread          each thread's CPU seconds (/proc/PID/task/*/stat),
                      by name: ri-core (the main loop), ri-worker-N
  worker spread       each worker's CPU time off the workers' mean, % (the
                      goal: every one within +-25 %)

and, from the workers' CPU seconds per GB, what a 16-core hub would carry
if CPU were all that bound it (16 workers, the main loop's share as
measured): a projection on paper, not a measurement.

Prints a table, writes --json (build/workers.json). Needs ri-loadgen
(make bench builds it)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (spawn, stop, free_port, wait_port, wait_ready)

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid):
    """{thread name: CPU seconds} of a process's threads (user + system);
    names that repeat get their thread id appended."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        secs = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
        out[name if name not in out else f"{name}/{tid}"] = secs
    return out


def run_one(a, workers, tmp):
    core = os.path.join(bench.ROOT, a.build, "ri-core")
    plugdir = os.path.join(bench.ROOT, a.build, "plugins")
    os.makedirs(tmp, exist_ok=True)
    sport = bench.free_port(tuple(f"127.0.0.{i + 2}" for i in range(a.edges)) + ("127.0.0.1",))
    srv = bench.spawn([bench.LOADGEN, "serve", "--host", "127.0.0.1", "--source", str(sport)],
                      os.path.join(tmp, "targets.log"))
    bench.wait_port("127.0.0.1", sport, "ri-loadgen serve", proc=srv)
    hp = bench.free_port()
    secrets = [os.urandom(16).hex() for _ in range(a.edges)]
    edges = ", ".join(f'{{ id = "e{i}"; secret = "{secrets[i]}"; listen_ports = [ {sport} ]; }}'
                      for i in range(a.edges))
    hub = (f'role = "hub"; log_level = "warn"; plugin_dir = "{plugdir}";\n'
           f'plugins = ( {{ name = "auth_secret"; }}, {{ name = "header_proxy_v1"; }} );\n'
           f'hub = {{ listen = "127.0.0.1:{hp}"; target_host = "127.0.0.1"; state_dir = "";\n'
           f'  workers = {workers}; edges = ( {edges} ); }};\n')
    paths = {"hub.cfg": hub}
    for i in range(a.edges):
        paths[f"edge{i}.cfg"] = (
            f'role = "edge"; log_level = "warn"; plugin_dir = "{plugdir}";\n'
            f'plugins = ( {{ name = "auth_secret"; }}, {{ name = "listen_tcp"; }} );\n'
            f'edge = {{ hub_host = "127.0.0.1"; hub_port = {hp}; edge_id = "e{i}";\n'
            f'  secret = "{secrets[i]}"; bind_address = "127.0.0.{i + 2}"; lanes = 1;'
            f' reconnect_min_secs = 0.1; }};\n')
    for n, text in paths.items():
        fd = os.open(os.path.join(tmp, n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    h = bench.spawn([core, "-c", f"{tmp}/hub.cfg"], os.path.join(tmp, "hub.log"))
    bench.wait_port("127.0.0.1", hp, "ri hub", proc=h)
    procs = []
    try:
        for i in range(a.edges):
            procs.append(bench.spawn([core, "-c", f"{tmp}/edge{i}.cfg"],
                                     os.path.join(tmp, f"edge{i}.log")))
        for i in range(a.edges):  # one edge after another: each placed on the fewest lanes
            bench.wait_port(f"127.0.0.{i + 2}", sport, f"edge {i}", proc=procs[i])
        clients = [subprocess.Popen([bench.LOADGEN, "bulk", "--to", f"127.0.0.{i + 2}:{sport}",
                                     "--streams", str(a.streams), "--warmup", str(a.warmup),
                                     "--secs", str(a.secs)], stdout=subprocess.PIPE, text=True)
                   for i in range(a.edges)]
        time.sleep(a.warmup)
        c0, t0 = thread_cpu(h.pid), time.monotonic()
        time.sleep(a.secs)
        c1, t1 = thread_cpu(h.pid), time.monotonic()
        gbps, errors = 0.0, []
        for c in clients:
            out, _ = c.communicate(timeout=60)
            try:
                r = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                errors.append("a bulk client gave no result")
                continue
            if r.get("error"):
                errors.append(r["error"])
            gbps += r.get("gbps") or 0
    finally:
        for p in procs:
            bench.stop(p)
        bench.stop(h)
        bench.stop(srv)
    gb = gbps * (t1 - t0) / 8
    threads = {n: round(c1.get(n, 0) - c0.get(n, 0), 2) for n in c1}
    total = sum(threads.values())
    ws = {n: v for n, v in threads.items() if n.startswith("ri-worker")}
    mean = sum(ws.values()) / len(ws) if ws else None
    spread = {n: round(100 * (v - mean) / mean, 1) for n, v in ws.items()} if mean else {}
    res = {"workers": workers, "gbps": round(gbps, 2), "gb": round(gb, 2),
           "secs": round(t1 - t0, 2), "hub_cpu_s": round(total, 2),
           "hub_cpu_s_per_gb": round(total / gb, 3) if gb else None, "threads": threads,
           "worker_spread_pct": spread, "errors": errors}
    if ws and gb:
        per_worker = sum(ws.values()) / gb          # CPU s per GB spent in workers
        main = (total - sum(ws.values())) / gb      # the main loop's share per GB
        # 16 workers each as busy as one core allows; the main loop's share rides along
        res["projection_16_cores_gbps"] = round(16 / (per_worker + main) * 8, 1)
    return res


def table(results):
    lines = ["| workers | Gbit/s | hub CPU s/GB | CPU s per thread | worker spread |",
             "|---|---|---|---|---|"]
    for r in results:
        th = ", ".join(f"{n} {v}" for n, v in sorted(r["threads"].items()))
        sp = ", ".join(f"{n} {v:+.1f} %" for n, v in sorted(r["worker_spread_pct"].items()))
        lines.append(f"| {r['workers']} | {r['gbps']} | {r['hub_cpu_s_per_gb']} | {th} | "
                     f"{sp or '-'} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--edges", type=int, default=4)
    ap.add_argument("--streams", type=int, default=2, help="downloads per edge")
    ap.add_argument("--secs", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    bench.LOADGEN = os.path.join(bench.ROOT, a.build, "ri-loadgen")
    if not os.access(bench.LOADGEN, os.X_OK):
        sys.exit(f"{bench.LOADGEN} is missing: run `make bench`")
    tmp = tempfile.mkdtemp(prefix="ri-workers-")
    results = []
    for w in [int(x) for x in a.workers.split(",") if x]:
        print(f"workers = {w}: {a.edges} edges x {a.streams} downloads, {a.secs:.0f} s ...",
              file=sys.stderr, flush=True)
        results.append(run_one(a, w, os.path.join(tmp, f"w{w}")))
    m = bench.machine()
    print(f"\n{a.edges} edges x {a.streams} downloads through one hub ({m['cpu']}, "
          f"{m['cores']} cores, {m['date']})\n")
    print(table(results))
    for r in results:
        if r.get("projection_16_cores_gbps"):
            print(f"\nworkers = {r['workers']}: projected 16-core hub (CPU-bound, on paper): "
                  f"{r['projection_16_cores_gbps']} Gbit/s")
        for e in r["errors"]:
            print(f"workers = {r['workers']}: error: {e}")
    out = a.json or os.path.join(bench.ROOT, a.build, "workers.json")
    with open(out, "w") as f:
        json.dump({"machine": bench.machine(), "date": time.strftime("%Y-%m-%d"),
                   "args": vars(a), "results": results}, f, indent=1)
    print(f"\n(JSON: {out}; logs in {tmp})")


if __name__ == "__main__":
    main()
