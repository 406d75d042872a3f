"""End to end on loopback: the PROXY v1 line the upstream sees, echo, token
configs, certificate pinning, the refused-upstream reset."""
import os
import socket
import time

from harness import (EdgeSpec, check, echo_check, expect_closed, fail, read_proxy_line,
                     recv_exact, wait_until)


def test_proxy_line_and_echo(env):
    p = env.port()
    ls = env.listen(p)  # upstream on 127.0.0.1:p, driven by hand
    hub, edge, spec = env.pair([p])
    c = env.connect("127.0.0.2", p)
    cport = c.getsockname()[1]
    c.sendall(b"hello upstream\n")
    u = env.accept(ls, what="the hub's upstream connection")
    line, rest = read_proxy_line(u)
    want = f"PROXY TCP4 127.0.0.1 127.0.0.2 {cport} {p}\r\n".encode()
    check(line == want, f"PROXY line {line!r}, want {want!r}")
    rest += recv_exact(u, len(b"hello upstream\n") - len(rest), "client bytes")
    check(rest == b"hello upstream\n", f"upstream got {rest!r} after the PROXY line")
    u.sendall(rest)
    check(recv_exact(c, len(rest), "echo") == rest, "echo differs")
    # a few more round trips both ways on the same stream
    for i in range(20):
        msg = os.urandom(1 + i * 997)
        c.sendall(msg)
        got = recv_exact(u, len(msg), "client -> upstream")
        check(got == msg, f"round {i}: upstream got other bytes")
        u.sendall(got[::-1])
        check(recv_exact(c, len(msg), "upstream -> client") == msg[::-1],
              f"round {i}: client got other bytes")
    c.close()
    check(u.recv(10) == b"", "upstream did not see the client's close as EOF")
    # exactly one stream reached the upstream
    ls.settimeout(0.2)
    try:
        extra = ls.accept()
        fail(f"a second upstream connection appeared from {extra[1]}")
    except socket.timeout:
        pass


def test_two_ports_many_clients(env):
    """Two ports of one edge, several clients: each PROXY line names the
    client's own port and the edge port it reached."""
    p1, p2 = env.ports(2)
    u1, u2 = env.upstream(p1), env.upstream(p2)
    env.pair([p1, p2])
    want = []
    for port, src in ((p1, None), (p2, "127.0.0.9"), (p1, "127.0.0.9"), (p2, None), (p1, None)):
        c = env.connect("127.0.0.2", port, bind=src)
        caddr, cport = c.getsockname()
        want.append(f"PROXY TCP4 {caddr} 127.0.0.2 {cport} {port}\r\n".encode())
        echo_check(c)
        c.close()
    u1.wait_conns(3)
    u2.wait_conns(2)
    lines = u1.proxy_lines() + u2.proxy_lines()
    want.sort()
    check(any(b" 127.0.0.9 " in w for w in want), "no client from 127.0.0.9")
    check(sorted(lines) == want, f"PROXY lines {sorted(lines)} != {want}")


def test_proxy_line_ipv6(env):
    """An edge bound to ::1: the upstream (still on 127.0.0.1) gets TCP6."""
    p = env.port()
    up = env.upstream(p)
    env.pair([p], bind="::1")
    c = env.connect("::1", p)
    cport = c.getsockname()[1]
    echo_check(c, b"over IPv6")
    c.close()
    up.wait_conns(1)
    want = f"PROXY TCP6 ::1 ::1 {cport} {p}\r\n".encode()
    check(up.proxy_lines() == [want], f"PROXY lines {up.proxy_lines()}, want [{want!r}]")


def test_edge_with_token(env):
    """An edge configured with a token from `ri-core token encode` connects."""
    p = env.port()
    up = env.upstream(p)
    spec = EdgeSpec("edge-tok", [p])
    hub = env.hub([spec])
    r = env.run_core(["token", "encode", "--hub-host", "127.0.0.1", "--hub-port", str(hub.port),
                      "--edge-id", spec.id, "--secret", spec.secret])
    check(r.returncode == 0, f"token encode failed: {r.stderr}")
    token = r.stdout.strip()
    edge = env.edge(hub, spec, token=token)
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    up.wait_conns(1)


def test_hub_fingerprint_pinning(env):
    """The edge accepts the hub whose certificate fingerprint it pins and
    refuses one with another fingerprint."""
    p = env.port()
    up = env.upstream(p)
    spec = EdgeSpec("edge-pin", [p])
    hub = env.hub([spec])
    fp = hub.wait_log(r"TLS certificate (sha256:[0-9a-f:]+)").group(1)
    # a wrong pin (flip the last hex digit): the edge must refuse the hub
    wrong = fp[:-1] + ("0" if fp[-1] != "0" else "1")
    bad = env.edge(hub, spec, name="edge-wrongpin", wait=False, hub_fingerprint=wrong)
    bad.wait_log(r"closed: .*(fingerprint|certificate)", 20)
    check(bad.count(r"listening on") == 0, "edge with a wrong pin opened ports")
    bad.stop()
    good = env.edge(hub, spec, name="edge-rightpin", hub_fingerprint=fp)
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    up.wait_conns(1)


def test_refused_upstream_resets_client(env):
    """Nothing listens upstream: the client's connection ends promptly (RST or
    EOF, never a hang), and the tunnel then still carries a new stream."""
    dead, live = env.ports(2)
    up = env.upstream(live)
    hub, edge, spec = env.pair([dead, live])
    base = {proc.name: proc.fds() for proc in (hub, edge)}
    for i in range(3):
        try:
            c = env.connect("127.0.0.2", dead)
            c.sendall(b"anyone there?")
        except (ConnectionResetError, BrokenPipeError):
            continue  # reset already: fine
        how, secs = expect_closed(c, 5, f"client on the refused port (try {i + 1})")
        c.close()
    hub.wait_log(r"edge edge-1: stream \d+ from 127\.0\.0\.1:\d+ to edge port %d: "
                 r"upstream 127\.0\.0\.1:%d: Connection refused" % (dead, dead))
    for proc in (hub, edge):  # the refused streams' sockets are closed
        wait_until(lambda: proc.fds() <= base[proc.name], 20,
                   f"{proc.name} back to {base[proc.name]} open fds (has {proc.fds()})")
    c = env.connect("127.0.0.2", live)
    echo_check(c, b"still alive" * 100)
    c.close()
    conns = up.wait_conns(1)
    check(len(conns) == 1, f"live upstream saw {len(conns)} connections")


def test_refused_upstream_is_reset(env):
    """The refusal reaches the client as a TCP reset (not a clean EOF)."""
    dead = env.port()
    env.pair([dead])
    # do not send: a reset must come by itself
    how, secs = env.connect_for_reset("127.0.0.2", dead, "client on the refused port")
    check(how == "reset", f"client saw {how}, expected a reset")


def test_hub_host_by_name(env):
    """hub_host may be a name (resolved; sent as TLS server name)."""
    p = env.port()
    up = env.upstream(p)
    spec = EdgeSpec("edge-named", [p])
    hub = env.hub([spec])
    env.edge(hub, spec, hub_host="localhost")
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    up.wait_conns(1)


def test_upstream_connect_timeout(env):
    """An upstream that never completes the TCP handshake (its accept queue
    is full): after connect_timeout_secs the client is reset."""
    p = env.port()
    ls = socket.socket()
    env.closers.append(ls.close)
    ls.bind(("127.0.0.1", p))
    ls.listen(0)
    filler = env.connect("127.0.0.1", p)  # fills the queue of one; nobody accepts
    hub, edge, spec = env.pair([p], hub_opts={"connect_timeout_secs": 1})
    t0 = time.monotonic()
    how, secs = env.connect_for_reset("127.0.0.2", p, "a client whose upstream hangs")
    check(how == "reset", f"client saw {how}, expected a reset")
    hub.wait_log(r"stream \d+ from \S+ to edge port %d: upstream \S+: Connection timed out" % p)
    check(time.monotonic() - t0 >= 0.9, "reset before connect_timeout_secs had passed")


def test_hub_over_ipv6(env):
    """Hub listening on [::1], the edge dialing ::1."""
    p = env.port()
    up = env.upstream(p)
    spec = EdgeSpec("edge-v6hub", [p])
    hub = env.hub([spec], listen_host="::1")
    env.edge(hub, spec, hub_host="::1")
    hub.wait_log(r"edge edge-v6hub connected from \[::1\]:\d+")
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    up.wait_conns(1)


def test_header_injector_disabled_per_site(env):
    """header_proxy_v1 listed with enabled = false: the upstream receives the
    client's bytes untouched (no PROXY line), both ways."""
    p = env.port()
    ls = env.listen(p)
    hub, edge, spec = env.pair([p], hub_opts={"plugins": [
        '{ name = "auth_secret"; }', '{ name = "header_proxy_v1"; enabled = false; }']})
    check(hub.count(r"no header injector") == 1, "the hub did not report running without a header")
    c = env.connect("127.0.0.2", p)
    msg = b"PROXY-less bytes\r\n" + os.urandom(5000)
    c.sendall(msg)
    u = env.accept(ls, what="the hub's upstream connection")
    got = recv_exact(u, len(msg), "client bytes")
    check(got == msg, f"upstream got {got[:40]!r}..., want the client's bytes exactly")
    u.sendall(got[::-1])
    check(recv_exact(c, len(msg), "reply") == msg[::-1], "reply differs")
