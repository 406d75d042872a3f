"""Data integrity: bulk bytes through one stream, many concurrent streams,
thousands of idle streams. Every byte is checksummed both ways."""
import os
import selectors
import socket
import time

from harness import T, check, echo_check, fail, pump, raise_nofile, timeout, wait_until


def _check_results(res, up, sizes, what):
    errors = [r for r in res if r["error"]]
    if errors:
        fail(f"{what}: {len(errors)} stream(s) failed, e.g. {errors[0]['error']}")
    for i, (r, n) in enumerate(zip(res, sizes)):
        check(r["sent_len"] == n, f"{what}: stream {i} sent {r['sent_len']} of {n}")
        check(r["recv_len"] == n,
              f"{what}: stream {i} got back {r['recv_len']} of {n} bytes")
        check(r["recv_sha"] == r["sent_sha"], f"{what}: stream {i}: echoed bytes differ")
    # the upstream side: each client's bytes arrived whole, under its PROXY line
    by_port = {}
    for c in up.conns:
        line = c.proxy_line.decode()
        by_port[int(line.split()[4])] = c
    for i, r in enumerate(res):
        c = by_port.get(r["local"][1])
        check(c is not None, f"{what}: upstream never saw client port {r['local'][1]}")
        check(c.nbytes == sizes[i],
              f"{what}: upstream got {c.nbytes} of {sizes[i]} bytes from stream {i}")
        check(c.digest() == r["sent_sha"], f"{what}: upstream got other bytes on stream {i}")


@timeout(180)
def test_bulk_32mb_each_way(env):
    p = env.port()
    up = env.upstream(p)
    env.pair([p])
    n = 32 << 20
    data = os.urandom(n)
    t0 = time.monotonic()
    res = pump(("127.0.0.2", p), [data], timeout_s=120)
    env.debug(f"32 MiB each way in {time.monotonic() - t0:.2f}s")
    up.wait(lambda: all(c.closed for c in up.conns) and len(up.conns) == 1, 20,
            "the upstream connection to close")
    check(len(up.conns) == 1, f"upstream saw {len(up.conns)} connections")
    _check_results(res, up, [n], "32 MiB stream")


@timeout(240)
def test_200_concurrent_streams(env):
    p1, p2 = env.ports(2)
    up1, up2 = env.upstream(p1), env.upstream(p2)
    env.pair([p1, p2])
    k = 200
    # ~1 MiB each, distinct sizes and contents
    sizes = [(1 << 20) - 4096 + (i * 37) % 8192 for i in range(k)]
    blob = os.urandom((1 << 20) + 8192 + k)
    payloads = [blob[i:i + sizes[i]] for i in range(k)]
    addrs = [("127.0.0.2", p1 if i % 2 == 0 else p2) for i in range(k)]
    t0 = time.monotonic()
    res = pump(addrs, payloads, timeout_s=180)
    env.debug(f"{k} streams x ~1 MiB each way in {time.monotonic() - t0:.2f}s")
    for up, want in ((up1, k // 2), (up2, k - k // 2)):
        up.wait(lambda: len(up.conns) >= want and all(c.closed for c in up.conns), 30,
                f"{want} upstream connections to finish")
        check(len(up.conns) == want, f"{up.name} saw {len(up.conns)} connections, want {want}")
    _check_results([r for i, r in enumerate(res) if i % 2 == 0], up1,
                   [s for i, s in enumerate(sizes) if i % 2 == 0], "port 1")
    _check_results([r for i, r in enumerate(res) if i % 2 == 1], up2,
                   [s for i, s in enumerate(sizes) if i % 2 == 1], "port 2")


@timeout(240)
def test_2000_idle_streams(env):
    k = 2000
    # the test process holds both ends (2 fds per stream), each ri-core one end
    have = raise_nofile(3 * k + 1000)
    check(have >= 2 * k + 500, f"RLIMIT_NOFILE is {have}: too low for {k} streams "
                               f"(raise the hard limit)")
    p = env.port()
    up = env.upstream(p)
    hub, edge, spec = env.pair([p])
    base = {proc.name: proc.fds() for proc in (hub, edge)}
    clients = []
    sel = selectors.DefaultSelector()
    try:
        for i in range(k):
            s = socket.socket()
            s.settimeout(T(20))
            try:
                s.connect(("127.0.0.2", p))
            except OSError as e:
                s.close()
                fail(f"client {i} could not connect: {e}")
            clients.append(s)
        ports = {s.getsockname()[1] for s in clients}
        check(len(ports) == k, "client ports not distinct")
        up.wait_conns(k, timeout_s=90)
        seen = {int(line.split()[4]) for line in up.proxy_lines()}
        check(seen == ports, f"upstream saw {len(seen & ports)} of the {k} clients "
                             f"(+{len(seen - ports)} unknown)")
        check(all(not c.closed and not c.eof for c in up.conns),
              "an idle upstream connection ended early")
        # every one of them still carries bytes
        for s in clients[::97]:
            echo_check(s, os.urandom(100), "echo on an idle stream")
        # close them all: FIN through the tunnel, upstream closes, client sees EOF
        for s in clients:
            s.shutdown(socket.SHUT_WR)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        left, end = k, time.monotonic() + T(90)
        while left:
            if time.monotonic() > end:
                fail(f"{left} of {k} streams did not end after the client's FIN")
            for key, _ in sel.select(timeout=1):
                try:
                    d = key.fileobj.recv(65536)
                except ConnectionResetError:
                    fail("a stream was reset instead of closed")
                if not d:
                    sel.unregister(key.fileobj)
                    left -= 1
        up.wait(lambda: all(c.closed for c in up.conns), 60, "all upstream connections to close")
        check(sum(1 for c in up.conns if c.eof) == k,
              f"only {sum(1 for c in up.conns if c.eof)} upstream connections saw EOF")
        check(not any(c.reset for c in up.conns), "an upstream connection was reset")
    finally:
        sel.close()
        for s in clients:
            s.close()
    # every stream's socket is gone again, and the tunnel still works
    check(edge.alive() and hub.alive(), "edge or hub died")
    for proc in (hub, edge):
        wait_until(lambda: proc.fds() <= base[proc.name], 30,
                   f"{proc.name} back to {base[proc.name]} open fds (has {proc.fds()})")
    c = env.connect("127.0.0.2", p)
    echo_check(c, os.urandom(65536), "echo after the 2000 streams")
    c.close()
    up.wait_conns(k + 1)
