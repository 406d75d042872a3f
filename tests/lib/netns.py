"""netns.py -- a bottleneck link for tests and benchmarks.

Link(rate_mbit, queue_ms) makes a network namespace (the far side) joined
to this one (the near side) by a veth pair, both ends shaped with tc tbf to
rate_mbit with a queue of queue_ms, addressed from 198.18.0.0/15 (RFC 2544,
set aside for benchmarks): near 198.18.N.1, far 198.18.N.2, N chosen per
process so concurrent runs do not collide. It needs root (or CAP_NET_ADMIN)
and iproute2; netem is not used (not in every kernel), so the link adds no
delay of its own, only a rate and a queue, like an edge's uplink.

    link = Link(100, 20)
    p = subprocess.Popen(link.far(["ri-core", "-c", "hub.cfg"]))   # runs far
    ...
    link.close()                                                   # always

The namespace is removed by close(), and at interpreter exit if close was
never reached.
"""
import atexit
import os
import subprocess

_open = []


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def available():
    """(True, "") if this process can make a link, else (False, why)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root (run the suite as root, as CI does)"
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"ip netns does not work: {r.stderr.strip()}"
    r = subprocess.run(["tc", "-V"], capture_output=True, text=True)
    if r.returncode != 0:
        return False, "tc (iproute2) is missing"
    return True, ""


class Link:
    def __init__(self, rate_mbit, queue_ms=20, tag=None, burst=64 * 1024):
        self.rate_mbit = rate_mbit
        self.queue_ms = queue_ms
        self.burst = burst  # bytes the bucket holds: a line sends no bursts of its own
        tag = tag or f"{os.getpid() % 100000}"
        n = (os.getpid() + len(_open) * 7) % 250 + 1
        self.ns = f"rifar{tag}"
        self.near_dev, self.far_dev = f"rin{tag}"[:15], f"rif{tag}"[:15]
        self.near_addr, self.far_addr = f"198.18.{n}.1", f"198.18.{n}.2"
        self.closed = False
        _open.append(self)
        try:
            self._up()
        except subprocess.CalledProcessError as e:
            self.close()
            raise RuntimeError(f"cannot make the link: {' '.join(e.cmd)}: {e.stderr}") from e

    def _shape(self, prefix, dev):
        subprocess.run([*prefix, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
                        "rate", f"{self.rate_mbit}mbit", "burst", str(self.burst),
                        "latency", f"{self.queue_ms}ms"], check=True, capture_output=True,
                       text=True)

    def _up(self):
        _ip("netns", "del", self.ns, check=False)
        _ip("link", "del", self.near_dev, check=False)
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.near_dev, "type", "veth", "peer", "name", self.far_dev)
        _ip("link", "set", self.far_dev, "netns", self.ns)
        _ip("addr", "add", f"{self.near_addr}/30", "dev", self.near_dev)
        _ip("link", "set", self.near_dev, "up")
        far = ["ip", "netns", "exec", self.ns]
        subprocess.run([*far, "ip", "addr", "add", f"{self.far_addr}/30", "dev", self.far_dev],
                       check=True, capture_output=True, text=True)
        subprocess.run([*far, "ip", "link", "set", self.far_dev, "up"], check=True,
                       capture_output=True, text=True)
        subprocess.run([*far, "ip", "link", "set", "lo", "up"], check=True, capture_output=True,
                       text=True)
        self._shape([], self.near_dev)
        self._shape(far, self.far_dev)

    def far(self, argv):
        """argv to run a program on the far side."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def close(self):
        if self.closed:
            return
        self.closed = True
        _ip("netns", "del", self.ns, check=False)  # takes the veth pair with it
        _ip("link", "del", self.near_dev, check=False)
        if self in _open:
            _open.remove(self)


@atexit.register
def _cleanup():
    for link in list(_open):
        link.close()
