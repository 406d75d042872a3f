"""Faults: processes killed or frozen mid-transfer, slow clients and
upstreams, a peer that withholds ACK or WINDOW, a hub that sends what no
hub should."""
import os
import re
import signal
import socket
import threading
import time

from harness import (EdgeSpec, T, check, echo_check, expect_closed, is_listening, pump,
                     recv_exact, wait_until)


def _bulk_client(env, port, stop):
    """A client echoing data through the tunnel until stop is set or the
    connection ends; returns a dict with what happened."""
    res = {"sent": 0, "recv": 0, "end": None}
    c = env.connect("127.0.0.2", port)

    def run():
        c.settimeout(T(20))
        blob = b"z" * 16384
        try:
            while not stop.is_set():
                c.sendall(blob)
                res["sent"] += len(blob)
                got = c.recv(65536)
                if not got:
                    res["end"] = "eof"
                    return
                res["recv"] += len(got)
        except (ConnectionResetError, BrokenPipeError):
            res["end"] = "reset"
        except socket.timeout:
            res["end"] = "timeout"
        except OSError as e:
            res["end"] = f"error {e}"

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return res, th


def test_hub_killed_mid_transfer(env):
    p = env.port()
    up = env.upstream(p)
    hub, edge, spec = env.pair([p], edge_opts={"reconnect_max_secs": 0.5})
    stop = threading.Event()
    res, th = _bulk_client(env, p, stop)
    wait_until(lambda: res["recv"] > 1 << 20, 20, "a megabyte echoed through the tunnel")
    m = edge.mark()
    hub.signal(signal.SIGKILL)
    hub.wait_exit(10)
    th.join(T(20))
    check(res["end"] in ("reset", "eof"), f"the client's stream ended with {res['end']!r}")
    edge.wait_log(r"closed: (peer closed the connection|connection lost: Connection reset)",
                  since=m)
    edge.wait_log(r"cannot reach hub", since=m)  # retrying
    hub2 = env.restart_hub(hub, name="hub-again")
    edge.wait_log(r"connected to hub", since=m)
    echo_check(env.connect("127.0.0.2", p), b"after the crash")


def test_edge_killed_mid_transfer(env):
    p = env.port()
    up = env.upstream(p)
    hub, edge, spec = env.pair([p])
    base = hub.fds()
    stop = threading.Event()
    res, th = _bulk_client(env, p, stop)
    wait_until(lambda: res["recv"] > 1 << 20, 20, "a megabyte echoed through the tunnel")
    check(hub.fds() > base, "the hub holds no upstream socket for the stream")
    m = hub.mark()
    edge.signal(signal.SIGKILL)
    edge.wait_exit(10)
    hub.wait_log(r"edge edge-1: closed: (peer closed the connection|connection lost)", since=m)
    up.wait(lambda: all(c.closed for c in up.conns), 20, "the upstream side to be closed")
    wait_until(lambda: hub.fds() <= base, 20, f"the hub's descriptors back to {base}")
    edge2 = env.edge(hub, spec, name="edge-again")
    echo_check(env.connect("127.0.0.2", p), b"after the edge crash")
    stop.set()


def test_slow_clients_and_upstream_do_not_starve_bulk(env):
    """20 slowloris clients (a byte every 50 ms) and a slowly reading
    upstream beside a bulk transfer: the bulk transfer completes intact and
    every slow stream still gets its bytes through."""
    p, ps = env.ports(2)
    env.upstream(p)
    slow_up = env.listen(ps)
    hub, edge, spec = env.pair([p, ps])
    slow = [env.connect("127.0.0.2", p) for _ in range(20)]
    stop = threading.Event()

    def drip():
        i = 0
        while not stop.is_set():
            for c in slow:
                c.sendall(bytes([65 + i % 26]))
            i += 1
            time.sleep(0.05)

    th = threading.Thread(target=drip, daemon=True)
    th.start()
    # an upstream that takes 20 KiB and then nothing, from a client pushing 64 MiB
    sc = env.connect("127.0.0.2", ps)
    u = env.accept(slow_up)
    pushed = {"n": 0}

    def push():
        blob = b"s" * 65536
        try:
            for _ in range(1024):
                sc.sendall(blob)
                pushed["n"] += len(blob)
        except OSError:
            pass

    tp = threading.Thread(target=push, daemon=True)
    tp.start()
    try:
        r = pump([("127.0.0.2", p)], [os.urandom(16 << 20)], timeout_s=120)
        check(r[0]["recv_len"] == 16 << 20 and r[0]["recv_sha"] == r[0]["sent_sha"],
              f"bulk transfer beside slow streams: {r[0]}")
        got = b""
        for _ in range(5):
            got += u.recv(4096)
            time.sleep(0.02)
        check(got.startswith(b"PROXY "), f"slow upstream got {got[:60]!r}")
    finally:
        stop.set()
        th.join(5)
    for i, c in enumerate(slow):
        c.settimeout(T(10))
        echo = c.recv(1)
        check(echo == b"A", f"slow client {i} got {echo!r} back")
    # back-pressure reached the pushing client: windows bound what is buffered
    check(pushed["n"] < 32 << 20, f"{pushed['n']} bytes accepted from a client whose upstream "
                                  f"stopped reading")


def _withholding_edge(env, flag, floor, cap, resume):
    """A rogue edge (flag: --no-ack or --no-window) opens a stream whose
    upstream sends 3 MiB at once: the hub sends at least `floor` bytes and
    then stops, at most `cap`; after `resume` (turning the answers back on)
    the rest comes."""
    p = env.port()
    env.upstream(p, mode="source", source_bytes=3 << 20)
    a = EdgeSpec("edge-a", [p])
    hub = env.hub([a])
    peer = env.peer("edge", f"127.0.0.1:{hub.port}", a.id, a.secret, flag)
    m = peer.send(f"open 1 {p}")
    wait_until(lambda: peer.data_bytes(1, m) >= floor, 20, f"the first {floor} bytes")
    time.sleep(0.5)  # more would arrive now if the limit did not hold
    got = peer.data_bytes(1, m)
    check(got <= cap, f"{got} bytes arrived with {flag} (the limit is {cap})")
    peer.send(resume(got))
    wait_until(lambda: peer.data_bytes(1, m) >= 3 << 20, 30, "the rest once the peer answers")


def test_edge_that_never_acks_is_capped(env):
    """No ACK: the hub stops at its in-flight floor (32 KiB, pace.h) instead
    of pouring data into the tunnel; once ACKs come, the data flows again."""
    _withholding_edge(env, "--no-ack", 32 << 10, (32 + 64) << 10,
                      lambda got: f"autoack on ; ack {got}")


def test_edge_that_never_grants_window_is_capped(env):
    """No WINDOW: the hub sends one initial window (1 MiB) of the stream and
    waits; credit then lets the rest through."""
    _withholding_edge(env, "--no-window", 1 << 20, 1 << 20,
                      lambda got: f"autowindow on ; window 1 {1 << 20}")


def test_malicious_hub_many_ports_and_unknown_streams(env):
    """A hub (ri-peer, knowing the secret) assigns 2000 ports, then none,
    then sends DATA for a stream the edge never opened: the edge opens and
    closes what it is told, then drops the tunnel as a protocol error and
    keeps running."""
    hp = env.port()
    base = env.port()
    spec = EdgeSpec("edge-m", [])
    hub = env.peer("hub", f"127.0.0.1:{hp}", spec.id, spec.secret)
    edge = env.edge(hp, spec, wait=False)
    hub.wait_log(r"(?m)^READY$")
    first = 20000
    hub.send(f"configrange {first} 2000")
    edge.wait_log(r"hub assigns 2000 ports")
    wait_until(lambda: is_listening("127.0.0.2", first + 1999), 30, "the last of 2000 ports")
    hub.send("config none")
    edge.wait_log(r"hub assigns 0 ports")
    wait_until(lambda: not is_listening("127.0.0.2", first + 1999) and
               not is_listening("127.0.0.2", first), 30, "the ports to close")
    m = edge.mark()
    hub.send("data 7 who-opened-this")
    edge.wait_log(r"DATA for stream 7 that was never opened", since=m)
    edge.wait_log(r"reconnecting in", since=m)
    check(edge.alive(), "the edge exited")
