"""Memory a burst took is given back once the burst is over."""
import socket
import time

from harness import SANITIZED, T, check, rss_mib, wait_until


def test_memory_returns_after_clients_that_never_read(env):
    """50 clients send and never read: the echo of what they sent backs up
    in the edge (up to each stream's window). Once they close, the edge's
    resident memory falls back near where it started."""
    p = env.port()
    env.upstream(p)
    hub, edge, spec = env.pair([p])
    base = rss_mib(edge.pid)
    clients = []
    for _ in range(50):
        c = env.connect("127.0.0.2", p)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.setblocking(False)
        clients.append(c)
    blob = b"x" * 65536
    end = time.monotonic() + T(60)
    while rss_mib(edge.pid) < base + 80:
        check(time.monotonic() < end, f"the edge never grew past {rss_mib(edge.pid):.0f} MiB")
        for c in clients:
            try:
                c.send(blob)
            except BlockingIOError:
                pass
        time.sleep(0.005)
    peak = rss_mib(edge.pid)
    for c in clients:
        c.close()
    if SANITIZED:
        return  # ASan's allocator keeps freed memory in quarantine on purpose
    wait_until(lambda: rss_mib(edge.pid) < base + 0.2 * (peak - base), 30,
               f"the edge's memory to fall back from {peak:.0f} MiB (started at {base:.0f} MiB, "
               f"now {rss_mib(edge.pid):.0f} MiB)")
    env.debug(f"edge RSS: {base:.0f} MiB before, {peak:.0f} at peak, {rss_mib(edge.pid):.0f} after")
