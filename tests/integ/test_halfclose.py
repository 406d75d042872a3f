"""Half-close (FIN) carried through the tunnel in both directions."""
import os
import socket

from harness import check, read_proxy_line, recv_exact, recv_until_eof


def _stream(env):
    p = env.port()
    ls = env.listen(p)
    env.pair([p])
    c = env.connect("127.0.0.2", p)
    c.sendall(b"x")  # make sure the stream exists before reading upstream
    u = env.accept(ls, what="the upstream connection")
    line, rest = read_proxy_line(u)
    check(line.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.2 "), f"PROXY line {line!r}")
    rest += recv_exact(u, 1 - len(rest))
    check(rest == b"x", f"first byte {rest!r}")
    return c, u


def test_client_half_closes_first(env):
    c, u = _stream(env)
    request = os.urandom(300000)
    c.sendall(request)
    c.shutdown(socket.SHUT_WR)
    # upstream reads the whole request, then EOF
    got = recv_until_eof(u, "the request up to the client's FIN")
    check(got == request, f"upstream got {len(got)} bytes, want {len(request)}")
    # ...and can still answer on its open write side
    response = os.urandom(500000)
    u.sendall(response)
    u.sendall(b"END")
    u.shutdown(socket.SHUT_WR)
    got = recv_until_eof(c, "the response after our FIN")
    check(got == response + b"END", f"client got {len(got)} bytes, want {len(response) + 3}")
    u.close()
    c.close()


def test_upstream_half_closes_first(env):
    c, u = _stream(env)
    greeting = os.urandom(200000)
    u.sendall(greeting)
    u.shutdown(socket.SHUT_WR)
    got = recv_until_eof(c, "the upstream's bytes up to its FIN")
    check(got == greeting, f"client got {len(got)} bytes, want {len(greeting)}")
    # the client's direction is still open
    late = os.urandom(400000)
    c.sendall(late)
    c.shutdown(socket.SHUT_WR)
    got = recv_until_eof(u, "the client's bytes after the upstream's FIN")
    check(got == late, f"upstream got {len(got)} bytes, want {len(late)}")
    c.close()
    u.close()


def test_ping_pong_after_half_close(env):
    """Many small exchanges on the open direction after one side's FIN: bytes
    keep flowing one way while the other is shut."""
    c, u = _stream(env)
    c.shutdown(socket.SHUT_WR)
    check(u.recv(10) == b"", "upstream did not see EOF")
    for i in range(50):
        msg = f"line {i}\n".encode()
        u.sendall(msg)
        check(recv_exact(c, len(msg)) == msg, f"line {i} differs")
    u.close()
    check(c.recv(10) == b"", "client did not see EOF at the end")
