"""The hub's workers (core/ARCHITECTURE.md, "Workers"): ready tunnels run on
event loops of their own threads; every lane of an edge on one worker,
edges spread over the workers; counters summed over workers when read;
reloads, runtime edge changes and control commands while streams run on
several workers; workers = 1 keeps everything on the main loop.

The whole suite runs with the default (one worker per CPU) and again with
RI_TEST_WORKERS=1 (make test); these tests pin what they need. A newer
edge process replacing an older group on the other worker is
test_lanes.py's newer_edge_process_replaces_the_older_group (the new group
goes to the worker with the fewest lanes: not the old group's)."""
import os
import signal
import threading

from harness import T, Ctl, EdgeSpec, check, echo_check, pump, wait_until


def _threads(proc):
    """The names of a process's threads (/proc/PID/task/*/comm)."""
    names = []
    for tid in os.listdir(f"/proc/{proc.pid}/task"):
        try:
            with open(f"/proc/{proc.pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def _edge(ctl, edge_id):
    return [e for e in ctl("status")["edges"] if e["id"] == edge_id][0]


def _hub_with_edges(env, n_edges, workers, lanes):
    specs = [EdgeSpec(f"edge-w{i}", [env.port()]) for i in range(n_edges)]
    for s in specs:
        env.upstream(s.ports[0])
    sock = env.path("hub.sock")
    hub = env.hub(specs, control_socket=sock, workers=workers)
    ctl = Ctl(sock)
    edges = []
    for s in specs:  # one after another: placement sees each edge's lanes booked
        edges.append(env.edge(hub, s, lanes=lanes))
        wait_until(lambda: _edge(ctl, s.id)["lanes"] == lanes, T(20), f"{s.id}: {lanes} lanes")
    return hub, ctl, specs, edges


def test_edges_spread_over_workers_and_lanes_stay_together(env):
    hub, ctl, specs, _ = _hub_with_edges(env, 4, workers=2, lanes=2)
    names = _threads(hub)
    check(names.count("ri-worker-1") == 1 and names.count("ri-worker-2") == 1,
          f"the hub's threads: {names}")
    check(hub.count(r"hub: 2 workers: event loops on threads of their own") == 1,
          "the hub did not say it runs 2 workers")
    st = ctl("status")
    check(st["workers"] == 2, f"status: workers {st.get('workers')}")
    per_worker = {}
    for e in st["edges"]:
        ws = {t["worker"] for t in e["tunnels"]}
        check(len(e["tunnels"]) == 2 and len(ws) == 1,
              f"{e['id']}: both lanes on one worker: {e['tunnels']}")
        per_worker.setdefault(ws.pop(), []).append(e["id"])
    check(sorted(per_worker) == [1, 2] and [len(v) for v in per_worker.values()] == [2, 2],
          f"4 edges of 2 lanes over 2 workers, by the fewest lanes: {per_worker}")
    # traffic through every edge; the counters are each worker's, summed
    payload = 300_000
    res = pump([("127.0.0.2", s.ports[0]) for s in specs], [b"w" * payload] * 4)
    check(all(not r["error"] and r["recv_sha"] == r["sent_sha"] for r in res),
          f"byte-exact through every edge: {[(r['error'], r['recv_len']) for r in res]}")
    m = ctl("metrics")
    check(m["workers"] == 2 and m["streamsOpened"] >= 4 and
          m["bytesFromPeer"] >= 4 * payload and m["bytesToPeer"] >= 4 * payload,
          f"metrics summed over the workers: streamsOpened {m['streamsOpened']}, "
          f"bytesFromPeer {m['bytesFromPeer']}, bytesToPeer {m['bytesToPeer']}")
    # per edge too (the registry's counts, kept from the workers' events)
    wait_until(lambda: all(e["streamsClosed"] >= 1 for e in ctl("metrics")["edges"]), T(20),
               "every edge's stream counted closed")


def test_one_worker_runs_on_the_main_loop(env):
    hub, ctl, specs, _ = _hub_with_edges(env, 2, workers=1, lanes=2)
    names = _threads(hub)
    check(not [n for n in names if n.startswith("ri-worker")], f"the hub's threads: {names}")
    check(hub.count(r"hub: 1 worker: one event loop runs everything") == 1,
          "the hub did not say it runs 1 worker")
    st = ctl("status")
    check(st["workers"] == 1 and all(t["worker"] == 1 for e in st["edges"]
                                     for t in e["tunnels"]), f"status: {st['edges']}")
    for s in specs:
        echo_check(env.connect("127.0.0.2", s.ports[0]), b"m" * 50_000)


def test_reload_and_control_while_streams_run_on_workers(env):
    hub, ctl, specs, edges = _hub_with_edges(env, 2, workers=2, lanes=2)
    conns = [env.connect("127.0.0.2", s.ports[0]) for s in specs for _ in range(3)]
    for c in conns:
        echo_check(c, b"a" * 2000)
    ws = {t["worker"] for e in ctl("status")["edges"] for t in e["tunnels"]}
    check(ws == {1, 2}, f"the two edges on different workers: {ws}")

    # a bulk transfer through each edge while the control path works
    res = {}
    bulk = threading.Thread(target=lambda: res.update(r=pump(
        [("127.0.0.2", s.ports[0]) for s in specs], [b"B" * (16 << 20)] * 2, timeout_s=120)),
        daemon=True)
    bulk.start()

    # SIGHUP: new keepalive and a new scheduler for live tunnels on both workers
    env.reload_with(hub, ping_interval_secs=7)
    for c in conns:
        echo_check(c, b"after reload")
    # the control socket: runtime edges (a port added to edge 0), status,
    # streams, metrics -- answered with data from both workers
    newp = env.port()
    env.upstream(newp)
    s0 = specs[0]
    a = ctl("update_edges", edges=[{"id": s0.id, "secret": s0.secret,
                                    "listen_ports": [s0.ports[0], newp]}])
    check(a["ok"], f"update_edges: {a}")
    wait_until(lambda: _edge(ctl, s0.id)["listenPorts"] == sorted([s0.ports[0], newp]), T(20),
               "the new port in status")
    edges[0].wait_log(r"listening on \S+ port %d" % newp, 20)
    echo_check(env.connect("127.0.0.2", newp), b"n" * 10_000)
    for _ in range(20):
        st = ctl("streams")["streams"]
        check(len({x["edge"] for x in st}) == 2 and len(st) >= 6,
              f"streams of both edges, from both workers: {len(st)}")
        ctl("status")
        ctl("metrics")
    bulk.join(T(120))
    check(not bulk.is_alive(), "the bulk transfers did not end")
    check(all(not r["error"] and r["recv_sha"] == r["sent_sha"] for r in res["r"]),
          f"bulk byte-exact through reload and control: "
          f"{[(r['error'], r['recv_len']) for r in res['r']]}")
    for c in conns:
        echo_check(c, b"still here")
    check(edges[1].count(r"lost|reset") == 0, "edge 1 lost a lane or a stream")


def test_edge_byte_counters_never_go_backwards(env):
    """Per-edge bytes are each worker's closed streams plus its live ones,
    read in one call: a stream closing while metrics are read is counted
    once, live or closed, never neither (a Prometheus counter must not
    fall)."""
    hub, ctl, specs, _ = _hub_with_edges(env, 2, workers=2, lanes=1)
    stop = threading.Event()
    done = {"n": 0}

    def churn():  # short streams through both edges, opened and closed
        while not stop.is_set():
            for s in specs:
                c = env.connect("127.0.0.2", s.ports[0])
                echo_check(c, b"c" * 20_000)
                c.close()
                done["n"] += 1

    th = threading.Thread(target=churn, daemon=True)
    th.start()
    last = {}
    try:
        for _ in range(300):
            for e in ctl("metrics")["edges"]:
                for k in ("bytesUp", "bytesDown"):
                    prev = last.get((e["id"], k), 0)
                    check(e[k] >= prev, f"{e['id']} {k} went back from {prev} to {e[k]}")
                    last[(e["id"], k)] = e[k]
    finally:
        stop.set()
        th.join(T(30))
    check(done["n"] >= 10 and all(last[(s.id, "bytesUp")] >= 20_000 for s in specs),
          f"streams through both edges while reading: {done['n']}, {last}")


def test_edge_lanes_run_on_its_workers(env):
    """The edge's side (README "Workers"): lane i's tunnel runs on loop
    i mod workers -- the main loop and a thread here -- and a client's
    socket lives on its lane's loop; reads, a reload and stopping reach
    every loop."""
    spec = EdgeSpec("edge-ew", [env.port()])
    env.upstream(spec.ports[0])
    hsock, esock = env.path("hub.sock"), env.path("edge.sock")
    hub = env.hub([spec], control_socket=hsock)
    hctl, ectl = Ctl(hsock), Ctl(esock)
    opts = dict(lanes=4, workers=2, control_socket=esock, drain_timeout_secs=20)
    edge = env.edge(hub, spec, **opts)
    wait_until(lambda: _edge(hctl, spec.id)["lanes"] == 4, T(20), "4 lanes up on the hub")
    names = _threads(edge)
    check(names.count("ri-worker-1") == 1 and "ri-worker-2" not in names,
          f"the edge's threads: {names}")
    check(edge.count(r"edge: 2 workers: lane i runs on loop i mod 2") == 1,
          "the edge did not say it runs 2 workers")
    st = ectl("status")
    check(st["workers"] == 2 and st["lanesUp"] == 4 and
          [x["worker"] for x in sorted(st["lanes"], key=lambda x: x["lane"])] == [0, 1, 0, 1],
          f"edge status: {st}")

    # 8 clients: two per lane, half of them on the worker's lanes
    conns = [env.connect("127.0.0.2", spec.ports[0]) for _ in range(8)]
    for c in conns:
        echo_check(c, b"e" * 5000)
    st = ectl("status")
    check(sorted(x["activeStreams"] for x in st["lanes"]) == [2, 2, 2, 2],
          f"two streams per lane, counted where they run: {st['lanes']}")
    check(len(ectl("streams")["streams"]) == 8, "the streams command lists all 8")
    m = ectl("metrics")
    check(m["streamsOpened"] >= 8 and m["activeStreams"] == 8 and
          m["bytesToPeer"] >= 8 * 5000, f"metrics summed over both loops: {m}")

    # bulk through both loops while the edge reloads and answers
    res = {}
    bulk = threading.Thread(target=lambda: res.update(r=pump(
        [("127.0.0.2", spec.ports[0])] * 4, [b"E" * (8 << 20)] * 4, timeout_s=120)),
        daemon=True)
    bulk.start()
    with open(edge.cfg_path, "w") as f:
        f.write(env.edge_config(hub.port, spec.id, spec.secret, ping_interval_secs=7, **opts))
    env.reload(edge)
    for _ in range(10):
        ectl("status")
        ectl("streams")
        ectl("metrics")
    bulk.join(T(120))
    check(not bulk.is_alive(), "the bulk transfers did not end")
    check(all(not r["error"] and r["recv_sha"] == r["sent_sha"] for r in res["r"]),
          f"bulk byte-exact through the reload: {[(r['error'], r['recv_len']) for r in res['r']]}")
    for c in conns:
        echo_check(c, b"after reload")
    check(edge.count(r"lost|reset") == 0, "the edge lost a lane or a stream")

    # stopping: the 8 open streams drain on both loops; the edge ends when
    # their clients close, well before drain_timeout_secs
    m = edge.mark()
    edge.signal(signal.SIGTERM)
    edge.wait_log(r"edge: stopping: draining 8 open streams", 20, since=m)
    for c in conns:
        echo_check(c, b"while draining")
        c.close()
    rc = edge.wait_exit(15, "its streams ended")
    check(rc == 0 and edge.count(r"edge: stopped", since=m) == 1, f"edge exit {rc}")
