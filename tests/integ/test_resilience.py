"""The tunnel survives: a hub restart, garbage on the hub port, a silent hub;
and the edge drains on SIGTERM."""
import os
import signal
import socket
import ssl
import time

from harness import (EdgeSpec, check, echo_check, expect_closed, is_listening, read_proxy_line,
                     recv_exact, recv_until_eof, T, wait_until)


def test_hub_restart_edge_reconnects(env):
    p = env.port()
    up = env.upstream(p)
    hub, edge, spec = env.pair([p])
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    m = edge.mark()
    hub.signal(signal.SIGTERM)
    rc = hub.wait_exit(20, "SIGTERM")
    check(rc == 0, f"hub exited with {rc} after SIGTERM")
    edge.wait_log(r"cannot reach hub .*refused", since=m)  # it keeps trying
    check(is_listening("127.0.0.2", p), "the edge closed its port while the hub is down")
    hub2 = env.restart_hub(hub, name="hub-again")
    edge.wait_log(r"connected to hub", since=m)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"after the restart")
    c.close()
    up.wait_conns(2)
    hub2.wait_log(r"edge %s connected" % spec.id)


def upstream_got(ls):
    """A connection waiting on listening socket ls (without blocking)."""
    ls.setblocking(False)
    try:
        c, _ = ls.accept()
        c.close()
        return True
    except BlockingIOError:
        return False
    finally:
        ls.setblocking(True)


def _garbage_clienthello():
    """A real TLS ClientHello, made by Python's ssl without a server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="hub.invalid")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outg.read()
    check(hello[:1] == b"\x16", "not a TLS handshake record")
    return hello


def test_garbage_on_hub_port(env):
    p = env.port()
    up = env.upstream(p)
    hub, edge, spec = env.pair([p], hub_opts={"handshake_timeout_secs": 1})
    s = env.connect("127.0.0.2", p)  # a legitimate stream that lives throughout
    echo_check(s, b"before the garbage")
    base = hub.fds()

    def garbage(what, payload, close_within):
        g = env.connect("127.0.0.1", hub.port)
        t0 = time.monotonic()
        if payload:
            try:
                g.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
        how, secs = expect_closed(g, close_within, f"hub connection sending {what}")
        g.close()
        env.debug(f"garbage {what}: {how} after {secs:.2f}s")
        echo_check(s, f"after {what}".encode())
        return time.monotonic() - t0

    garbage("random bytes", os.urandom(4096), 5)
    garbage("an HTTP request", b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n", 5)
    garbage("a ClientHello then junk", _garbage_clienthello() + os.urandom(2048), 5)
    garbage("a huge record header", b"\x16\x03\x01\xff\xff" + b"\x00" * 100, 5)
    secs = garbage("nothing at all", b"", 10)
    check(secs >= 0.8, f"a silent connection was closed after {secs:.2f}s, before the "
                       f"1 s handshake timeout")

    # a finished TLS handshake, then junk / silence, without authenticating
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for what, payload in (("TLS then junk", os.urandom(3000)), ("TLS then silence", b"")):
        raw = env.connect("127.0.0.1", hub.port)
        tls = ctx.wrap_socket(raw)
        if payload:
            tls.sendall(payload)
        try:
            how, secs = expect_closed(tls, 10, f"hub connection after {what}")
        except ssl.SSLError:
            pass  # an alert or a torn TLS record: closed all the same
        tls.close()
        echo_check(s, f"after {what}".encode())

    # a burst of silent connections at once
    many = [env.connect("127.0.0.1", hub.port) for _ in range(30)]
    for g in many:
        expect_closed(g, 15, "one of 30 silent connections")
        g.close()

    check(hub.alive(), "the hub died")
    wait_until(lambda: hub.fds() <= base, 20, f"the hub back to {base} open fds")
    echo_check(s, b"after all the garbage " * 100)
    s.close()
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"a new stream after the garbage")
    c.close()
    check(edge.count(r"connected to hub") == 1, "the legitimate edge reconnected")
    check(hub.count(r"TLS handshake failed") >= 3, "hub did not log failed handshakes")


def test_sigterm_drains_open_stream(env):
    p = env.port()
    ls = env.listen(p)
    hub, edge, spec = env.pair([p], edge_opts={"drain_timeout_secs": 300})
    c = env.connect("127.0.0.2", p)
    c.sendall(b"hello")
    u = env.accept(ls)
    line, rest = read_proxy_line(u)
    rest += recv_exact(u, 5 - len(rest))
    m = edge.mark()
    edge.signal(signal.SIGTERM)
    edge.wait_log(r"stopping: draining 1 open stream", since=m)
    edge.wait_log(r"closed port %d\b" % p, since=m)
    env.expect_port_closed("127.0.0.2", p, "a new client while draining")
    # the open stream still works both ways
    for i in range(5):
        msg = os.urandom(50000)
        c.sendall(msg)
        check(recv_exact(u, len(msg)) == msg, "client -> upstream while draining")
        u.sendall(msg[::-1])
        check(recv_exact(c, len(msg)) == msg[::-1], "upstream -> client while draining")
    check(edge.alive(), "the edge exited with a stream still open")
    # end the stream: the client half-closes, the upstream answers and closes
    c.shutdown(socket.SHUT_WR)
    check(recv_until_eof(u) == b"", "unexpected bytes")
    u.sendall(b"bye")
    u.close()
    check(recv_until_eof(c) == b"bye", "last bytes lost")
    rc = edge.wait_exit(20, "after its last stream ended")
    check(rc == 0, f"edge exited with {rc}")
    check(edge.count(r"drain timeout") == 0, "the drain timed out instead of completing")
    edge.wait_log(r"edge: stopped", allow_exit=True)


def test_sigterm_drain_timeout(env):
    p = env.port()
    ls = env.listen(p)
    hub, edge, spec = env.pair([p], edge_opts={"drain_timeout_secs": 1})
    c = env.connect("127.0.0.2", p)
    c.sendall(b"x")
    u = env.accept(ls)
    read_proxy_line(u)
    m = edge.mark()
    edge.signal(signal.SIGTERM)
    edge.wait_log(r"stopping: draining 1 open stream", since=m)
    check(edge.alive(), "the edge exited at once despite an open stream")
    rc = edge.wait_exit(20, "drain_timeout_secs = 1 with a stream that never ends")
    check(rc == 0, f"edge exited with {rc}")
    edge.wait_log(r"drain timeout", since=m, allow_exit=True)
    # the stream was cut: both ends see it end
    expect_closed(c, 10, "the client's stream after the drain timeout")
    expect_closed(u, 10, "the upstream's stream after the drain timeout")
    check(hub.alive(), "the hub died")


def test_keepalive_detects_silent_hub(env):
    p = env.port()
    up = env.upstream(p)
    hub, edge, spec = env.pair([p], edge_opts={"ping_interval_secs": 0.5,
                                               "ping_timeout_secs": 2})
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    m = edge.mark()
    hub.signal(signal.SIGSTOP)
    try:
        edge.wait_log(r"silent for .*dead", 20, since=m)
        edge.wait_log(r"reconnecting in", 20, since=m)
        check(is_listening("127.0.0.2", p), "the edge closed its port while the hub is silent")
    finally:
        hub.signal(signal.SIGCONT)
    # once the hub is back the edge gets in again
    edge.wait_log(r"connected to hub", 40, since=m)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"after SIGCONT")
    c.close()
    up.wait_conns(2)


def test_hub_sigterm_drains_open_stream(env):
    """SIGTERM on the hub: the edge holds new clients (the hub takes no new
    streams), the open stream finishes, then the hub exits 0."""
    p = env.port()
    ls = env.listen(p)
    hub, edge, spec = env.pair([p], hub_opts={"drain_timeout_secs": 300})
    c = env.connect("127.0.0.2", p)
    c.sendall(b"hello")
    u = env.accept(ls)
    line, rest = read_proxy_line(u)
    rest += recv_exact(u, 5 - len(rest))
    hm, em = hub.mark(), edge.mark()
    hub.signal(signal.SIGTERM)
    hub.wait_log(r"hub: stopping", since=hm)
    edge.wait_log(r"peer is going away: shutting down", since=em)
    held = env.connect("127.0.0.2", p)
    held.sendall(b"wait")
    edge.wait_log(r"holding new clients until a tunnel to the hub is ready", since=em)
    for i in range(5):
        msg = os.urandom(30000)
        c.sendall(msg)
        check(recv_exact(u, len(msg)) == msg, "client -> upstream while the hub drains")
        u.sendall(msg[::-1])
        check(recv_exact(c, len(msg)) == msg[::-1], "upstream -> client while the hub drains")
    check(hub.alive(), "the hub exited with a stream still open")
    c.shutdown(socket.SHUT_WR)
    check(recv_until_eof(u) == b"", "unexpected bytes")
    u.sendall(b"bye")
    u.close()
    check(recv_until_eof(c) == b"bye", "last bytes lost")
    rc = hub.wait_exit(20, "after the last stream ended")
    check(rc == 0, f"hub exited with {rc}")
    check(hub.count(r"drain timeout") == 0, "the hub's drain timed out instead of completing")
    # the edge survives and keeps trying; the held client is still waiting
    edge.wait_log(r"reconnecting in", since=em)
    check(edge.alive(), "the edge died with the hub")
    check(not upstream_got(ls), "the held client reached the upstream with the hub gone")
    held.close()


def test_keepalive_hub_detects_silent_edge(env):
    p = env.port()
    up = env.upstream(p)
    hub, edge, spec = env.pair([p], hub_opts={"ping_interval_secs": 0.5,
                                              "ping_timeout_secs": 2})
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    hm, em = hub.mark(), edge.mark()
    edge.signal(signal.SIGSTOP)
    try:
        hub.wait_log(r"edge %s: closed: peer silent for .*dead" % spec.id, 20, since=hm)
    finally:
        edge.signal(signal.SIGCONT)
    # the edge finds its connection gone and comes back
    edge.wait_log(r"connected to hub", 40, since=em)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"after SIGCONT")
    c.close()
    up.wait_conns(2)


def test_hub_drain_timeout(env):
    """SIGTERM on the hub with a stream that never ends: it exits 0 once
    drain_timeout_secs has passed, and both ends of the stream see it end."""
    p = env.port()
    ls = env.listen(p)
    hub, edge, spec = env.pair([p], hub_opts={"drain_timeout_secs": 1})
    c = env.connect("127.0.0.2", p)
    c.sendall(b"x")
    u = env.accept(ls)
    read_proxy_line(u)
    m = hub.mark()
    hub.signal(signal.SIGTERM)
    hub.wait_log(r"hub: stopping", since=m)
    rc = hub.wait_exit(20, "drain_timeout_secs = 1 with a stream that never ends")
    check(rc == 0, f"hub exited with {rc}")
    check(hub.count(r"drain timeout", since=m) >= 1, "no 'drain timeout' in the hub's log")
    expect_closed(u, 10, "the upstream's stream after the hub's drain timeout")
    expect_closed(c, 10, "the client's stream after the hub's drain timeout")
    check(edge.alive(), "the edge died")


def test_second_sigterm_stops_at_once(env):
    """A second SIGTERM ends the drain at once, whatever drain_timeout_secs
    (the edge, then -- on a new pair -- the hub)."""
    for which in ("edge", "hub"):
        p = env.port()
        ls = env.listen(p)
        hub, edge, spec = env.pair([p], edge_id=f"edge-{which}",
                                   edge_opts={"drain_timeout_secs": 3000},
                                   hub_opts={"drain_timeout_secs": 3000, "name": f"hub-{which}"})
        c = env.connect("127.0.0.2", p)
        c.sendall(b"x")
        u = env.accept(ls)
        _, rest = read_proxy_line(u)
        if not rest:  # the "x" may come with the PROXY line or after it
            recv_exact(u, 1)
        proc = edge if which == "edge" else hub
        m = proc.mark()
        proc.signal(signal.SIGTERM)
        proc.wait_log(r"stopping", since=m)
        echo = b"still draining"
        c.sendall(echo)
        check(recv_exact(u, len(echo)) == echo, "the stream stopped at the first SIGTERM")
        check(proc.alive(), f"{which} exited on the first SIGTERM with a stream open")
        # a reload now would reopen what the drain closed: it is refused
        proc.signal(signal.SIGHUP)
        proc.wait_log(r"SIGHUP ignored: the %s is stopping" % which, since=m)
        check(proc.count(r"reloading", since=m) == 0, f"{which} reloaded while draining")
        check(proc.alive(), f"{which} died on SIGHUP while draining")
        proc.signal(signal.SIGTERM)
        rc = proc.wait_exit(20, "a second SIGTERM")
        check(rc == 0, f"{which} exited with {rc}")
        proc.wait_log(r"second stop signal", since=m, allow_exit=True)
        check(proc.count(r"drain timeout", since=m) == 0,
              f"{which} calls the second SIGTERM a drain timeout")
        expect_closed(c, 10, "the client's stream after the second SIGTERM")


def test_edge_stops_promptly_while_not_connected(env):
    """SIGTERM reaches an edge that has no tunnel: one retrying against a
    port nobody listens on, one stuck in a TLS handshake with a frozen hub."""
    dead_port = env.port()
    spec = EdgeSpec("edge-lonely", [env.port()])
    lonely = env.edge(dead_port, spec, name="edge-lonely", wait=False)
    lonely.wait_log(r"cannot reach hub .*refused")
    lonely.wait_log(r"cannot reach hub .*refused", count=2)  # retrying
    lonely.signal(signal.SIGTERM)
    check(lonely.wait_exit(10, "SIGTERM while retrying") == 0, "bad exit code")

    hub = env.hub([spec])
    hub.signal(signal.SIGSTOP)  # accepts TCP (kernel), never answers TLS
    try:
        stuck = env.edge(hub, spec, name="edge-stuck", wait=False)
        wait_until(lambda: _has_conn_to(hub.port), 20, "the edge's TCP connection to the hub")
        stuck.signal(signal.SIGTERM)
        check(stuck.wait_exit(10, "SIGTERM during the TLS handshake") == 0, "bad exit code")
    finally:
        hub.signal(signal.SIGCONT)


def _has_conn_to(port):
    """An ESTABLISHED TCP connection to 127.0.0.1:port exists."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        for ln in f.read().splitlines()[1:]:
            parts = ln.split()
            if parts[2] == want and parts[3] == "01":
                return True
    return False


def test_hub_drain_keeps_data_for_a_slow_client(env):
    """The hub drains while the edge still holds the end of a response for a
    client that is not reading yet: the tunnel stays up until the edge has
    delivered it (the drained handshake), so the client gets every byte."""
    p = env.port()
    ls = env.listen(p)
    hub, edge, spec = env.pair([p], hub_opts={"drain_timeout_secs": 300})
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before connect: stays small
    c.settimeout(T(20))
    c.connect(("127.0.0.2", p))
    c.sendall(b"GET")
    c.shutdown(socket.SHUT_WR)  # the client is done sending: half-closed
    u = env.accept(ls)
    line, rest = read_proxy_line(u)
    rest += recv_until_eof(u)
    check(rest == b"GET", f"upstream got {rest!r}")
    # more than the edge's kernel buffers toward the client take (~4 MiB on
    # loopback) and less than those plus the window: the hub finishes its side
    # while the edge still queues the rest for the client
    body = os.urandom(6 << 20)
    u.sendall(body)
    u.close()
    hm = hub.mark()
    hub.signal(signal.SIGTERM)
    hub.wait_log(r"hub: stopping", since=hm)
    # with no drained handshake the hub would close now and the edge would
    # reset the stream with its data undelivered; give it every chance to
    try:
        hub.wait_exit(3, "closing early")
    except Exception:
        pass
    c.settimeout(T(60))
    got = recv_until_eof(c)
    check(len(got) == len(body) and got == body,
          f"client got {len(got)} of {len(body)} bytes after the hub drained")
    c.close()
    rc = hub.wait_exit(20, "after the edge delivered the last bytes")
    check(rc == 0, f"hub exited with {rc}")
    check(hub.count(r"drain timeout") == 0, "the hub's drain timed out instead of completing")
