"""measure.py -- load and latency probes shared by tests and benchmarks.

All probes talk plain TCP to an address (a tunnel's entry, or a target
directly for the raw baseline) and return numbers; none sleeps to let
something happen except as the probe's own pacing."""
import socket
import statistics
import threading
import time


def percentile(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def jain(xs):
    s = sum(xs)
    q = sum(x * x for x in xs)
    return (s * s) / (len(xs) * q) if q else 0.0


class Bulk:
    """n downloads from a "source" target through addr, read as fast as
    possible in threads until stop(); bytes per stream."""

    def __init__(self, addr, n=1, request=b"go"):
        self.addr, self.n = addr, n
        self.bytes = [0] * n
        self.errors = []
        self._stop = threading.Event()
        self.t0 = time.monotonic()
        self.threads = [threading.Thread(target=self._run, args=(i, request), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, i, request):
        try:
            c = socket.create_connection(self.addr, timeout=30)
            c.settimeout(5)
            c.sendall(request)
            while not self._stop.is_set():
                d = c.recv(1 << 20)
                if not d:
                    break
                self.bytes[i] += len(d)
            c.close()
        except OSError as e:
            if not self._stop.is_set():
                self.errors.append(repr(e))

    def mark(self):
        """(seconds, total bytes) now, to compute a rate over an interval."""
        return time.monotonic(), sum(self.bytes)

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(10)
        return sum(self.bytes) / max(1e-9, time.monotonic() - self.t0)


def rtts(addr, count, interval=0.01, size=64, timeout=10):
    """count round trips of `size` bytes through an echo target, one every
    `interval` seconds on one connection; microseconds each."""
    c = socket.create_connection(addr, timeout=timeout)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"p" * size
    out = []
    try:
        c.sendall(msg)  # warm the path (and the PROXY-line skip) first
        _recv_exact(c, size)
        for _ in range(count):
            t0 = time.perf_counter()
            c.sendall(msg)
            _recv_exact(c, size)
            out.append((time.perf_counter() - t0) * 1e6)
            if interval:
                time.sleep(interval)
    finally:
        c.close()
    return out


def _recv_exact(c, n):
    got = 0
    while got < n:
        d = c.recv(n - got)
        if not d:
            raise ConnectionError("echo target closed the connection")
        got += len(d)


def summary(samples):
    return {"p50": round(percentile(samples, 50)), "p90": round(percentile(samples, 90)),
            "p99": round(percentile(samples, 99)),
            "mean": round(statistics.mean(samples)) if samples else None, "n": len(samples)}
