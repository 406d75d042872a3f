"""Scheduling and classification policies at work in a hub/edge pair: the
elephant classifier and its window, sched_3tier, sched_drr, the SDK's
example scheduler built out of tree, and swapping policies under load."""
import hashlib
import os
import re
import selectors
import socket
import subprocess
import threading
import time

from harness import (EdgeSpec, ROOT, T, check, echo_check, pump, read_proxy_line, timeout,
                     wait_until)

ELEPHANT = '{ name = "classify_elephant"; age_secs = 1; rate_mbit = 8; }'


def _plugins(*extra, header=True):
    return (['{ name = "auth_secret"; }'] + (['{ name = "header_proxy_v1"; }'] if header else [])
            + list(extra))


def _download(env, port, nbytes, read_chunk=1 << 20, pause=0.0, results=None, key=None):
    """A client reading nbytes from an edge port (a "source" upstream sends
    them); returns the thread. results[key] gets the byte count."""
    def run():
        c = socket.create_connection(("127.0.0.2", port), timeout=T(60))
        c.sendall(b"go")
        got = 0
        try:
            while got < nbytes:
                d = c.recv(read_chunk)
                if not d:
                    break
                got += len(d)
                if results is not None:
                    results[key] = got
                if pause:
                    time.sleep(pause)
        finally:
            c.close()
        if results is not None:
            results[key] = got
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_elephant_on_the_hub_locks_the_edge_too(env):
    """Only the hub runs classify_elephant: a fast download becomes
    sustained there (logged) and the edge, told by a CLASS frame, treats it
    as sustained too."""
    p = env.port()
    env.upstream(p, mode="source", source_bytes=64 << 20)
    spec = EdgeSpec("edge-el", [p])
    hub = env.hub([spec], plugins=_plugins(ELEPHANT, '{ name = "sched_3tier"; }'))
    edge = env.edge(hub, spec, args=["-d"])
    res = {}
    # ~20 MB/s: past the 1 s age at well above the 8 Mbit/s threshold
    th = _download(env, p, 64 << 20, results=res, key="d", pause=0.05)
    hub.wait_log(r"classify_elephant: stream 1 \(port %d\) is sustained: \d+\.\d s old, "
                 r"[\d.]+ Mbit/s on average" % p, timeout_s=30)
    edge.wait_log(r"debug .*stream 1 class 1", timeout_s=10)
    th.join(T(60))
    check(res.get("d") == 64 << 20, f"the download got {res.get('d')} bytes")


def test_class_from_the_peer_sets_the_receive_window(env):
    """A hub (ri-peer) says stream 1 is sustained: the edge grants it no more
    than the 1 MiB sustained window, while stream 2 beside it gets the
    normal 4 MiB."""
    hp, p = env.ports(2)
    spec = EdgeSpec("edge-w", [p])
    hub = env.peer("hub", f"127.0.0.1:{hp}", spec.id, spec.secret, "--config", str(p))
    edge = env.edge(hp, spec)
    clients = []
    for sid in (1, 2):
        c = env.connect("127.0.0.2", p)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        clients.append(c)
        hub.wait_log(r"< OPEN stream=%d " % sid)
    m = hub.send("frame 0x15 1 01")
    # 4 MiB to each (what their initial grants allow), read by the clients
    hub.send("bulk 1 4194304 ; bulk 2 4194304")
    for c in clients:
        got = 0
        while got < 4 << 20:
            d = c.recv(1 << 20)
            check(d, "a client's stream ended early")
            got += len(d)

    def grants(sid):
        return sum(int(n) for n in re.findall(r"< WINDOW stream=%d len=4 n=(\d+)" % sid,
                                              hub.lines_since(m)))
    wait_until(lambda: grants(2) >= 3 << 20, 10, "stream 2's credit to come back")
    g1, g2 = grants(1), grants(2)
    check(g1 <= 1 << 20, f"the sustained stream was granted {g1} more bytes (window 1 MiB)")
    check(g2 > g1, f"normal stream {g2}, sustained {g1}")


@timeout(180)
def test_slow_readers_beside_bulk_all_finish(env):
    """20 clients reading slowly and 2 bulk downloads through sched_3tier
    with the elephant classifier: everything arrives, nothing deadlocks."""
    ps, pb = env.ports(2)
    env.upstream(ps, mode="source", source_bytes=256 << 10)
    env.upstream(pb, mode="source", source_bytes=32 << 20)
    spec = EdgeSpec("edge-sl", [ps, pb])
    plugins = _plugins(ELEPHANT, '{ name = "sched_3tier"; sustained_min_rate = 200000; }')
    hub = env.hub([spec], plugins=plugins)
    env.edge(hub, spec)
    res = {}
    ths = [_download(env, ps, 256 << 10, read_chunk=4096, pause=0.005, results=res, key=f"s{i}")
           for i in range(20)]
    ths += [_download(env, pb, 32 << 20, results=res, key=f"b{i}") for i in range(2)]
    for th in ths:
        th.join(T(150))
    short = {k: v for k, v in res.items() if v != (256 << 10 if k[0] == "s" else 32 << 20)}
    check(not short, f"transfers that did not complete: {short}")


def _build_example(env):
    src = os.path.join(ROOT, "sdk", "examples", "sched_prio.c")
    text = open(src).read()
    m = re.search(r"^ \*   (cc .* -o sched_prio\.so sdk/examples/sched_prio\.c)$", text, re.M)
    check(m, "sched_prio.c documents no cc line")
    cmd = m.group(1) + " -Werror"
    r = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True)
    check(r.returncode == 0, f"`{cmd}` failed:\n{r.stderr}")
    so = env.path("sched_prio.so")
    os.replace(os.path.join(ROOT, "sched_prio.so"), so)
    return so


def _race(env, hi, lo):
    """Two 64 MiB downloads at once; the low port's share of its bytes when
    the high port's download is complete."""
    res = {}
    tl = _download(env, lo, 64 << 20, results=res, key="lo")
    th = _download(env, hi, 64 << 20, results=res, key="hi")
    th.join(T(100))
    check(res.get("hi") == 64 << 20, f"the {hi} download got {res.get('hi')} bytes")
    share = res.get("lo", 0) / (64 << 20)
    tl.join(T(100))
    check(res.get("lo") == 64 << 20, f"the {lo} download got {res.get('lo')} bytes")
    return share


@timeout(240)
def test_sdk_example_scheduler_takes_effect(env):
    """sdk/examples/sched_prio.c, built out of tree with its own cc line,
    listing one port: in a race of two downloads, when that port's download
    is complete the other has got a smaller part of its own than with the
    built-in round robin in the same run."""
    so = _build_example(env)
    hi, lo = env.ports(2)
    for p in (hi, lo):
        env.upstream(p, mode="source", source_bytes=64 << 20)
    spec = EdgeSpec("edge-prio", [hi, lo])
    hub = env.hub([spec])
    env.edge(hub, spec)
    fifo = _race(env, hi, lo)
    env.reload_with(hub, plugins=_plugins(f'{{ name = "sched_prio"; file = "{so}"; '
                                          f'ports = [ {hi} ]; }}'))
    prio = _race(env, hi, lo)
    env.debug(f"low port's share when the high port finished: fifo {fifo:.2f}, prio {prio:.2f}")
    check(prio < 0.35 and prio < fifo - 0.1,
          f"the low port had {prio:.0%} of its bytes when the priority port finished "
          f"(round robin: {fifo:.0%}): no priority")


@timeout(180)
def test_scheduler_swap_under_load_loses_and_reorders_nothing(env):
    """SIGHUP six times, hub and edge, cycling fifo, 3tier (+ elephant) and
    drr while 4 x 16 MiB echo through the tunnel: every byte comes back, in
    order (SHA-256)."""
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-swap", [p])
    hub = env.hub([spec])
    edge = env.edge(hub, spec)
    scheds = [['{ name = "sched_fifo"; }'],
              ['{ name = "sched_3tier"; }', ELEPHANT],
              ['{ name = "sched_drr"; quantum = 16384; }'], []]
    result = {}

    def run():
        result["r"] = pump([("127.0.0.2", p)] * 4, [os.urandom(16 << 20) for _ in range(4)],
                           timeout_s=150)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    time.sleep(0.2)
    for i in range(6):
        hm = env.reload_with(hub, plugins=_plugins(*scheds[i % 4]))
        em = edge.mark()
        with open(edge.cfg_path) as f:
            text = f.read()
        text = re.sub(r"plugins = \(.*?\);", "plugins = ( " + ", ".join(
            ['{ name = "auth_secret"; }', '{ name = "listen_tcp"; }'] + scheds[(i + 1) % 4]) +
                      " );", text, flags=re.S)
        with open(edge.cfg_path, "w") as f:
            f.write(text)
        env.reload(edge)
        if not th.is_alive():
            break
    th.join(T(160))
    r = result.get("r")
    check(r, "the transfers did not finish")
    for x in r:
        check(x["recv_sha"] == x["sent_sha"] and not x["error"], f"a stream was damaged: {x}")
    hub.wait_log(r"hub: reloaded .*sched: ")
