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

DelayLink(rtt_ms, delayline) is a long link instead: the far namespace is
joined to this one by two TUN devices and ri-delayline (tests/bench/
delayline.c) between them, which holds every packet for half the round
trip, so TCP itself sees the delay (a relay that terminated TCP would hide
it: the tunnel's own connection would see a loopback round trip). Near
198.19.N.1, far 198.19.N.2; no rate limit beyond the CPU. Same far() and
close().

The namespace is removed by close(), and at interpreter exit if close was
never reached.
"""
import atexit
import json
import os
import subprocess
import time

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


class _FarSide:
    """A far namespace and a near device: names, addresses, far(), close()."""

    def _names(self, ns, near, far, net, tag):
        tag = tag or f"{os.getpid() % 100000}"
        n = (os.getpid() + len(_open) * 7) % 250 + 1
        self.ns = f"{ns}{tag}"
        self.near_dev, self.far_dev = f"{near}{tag}"[:15], f"{far}{tag}"[:15]
        self.near_addr, self.far_addr = f"{net}.{n}.1", f"{net}.{n}.2"
        self.closed = False
        _open.append(self)

    def far(self, argv):
        """argv to run a program on the far side."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def _stop(self):
        pass

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._stop()
        _ip("netns", "del", self.ns, check=False)  # takes a veth pair or a TUN with it
        _ip("link", "del", self.near_dev, check=False)
        if self in _open:
            _open.remove(self)


class Link(_FarSide):
    def __init__(self, rate_mbit, queue_ms=20, tag=None, burst=64 * 1024):
        self.rate_mbit = rate_mbit
        self.queue_ms = queue_ms
        self.burst = burst  # bytes the bucket holds: a line sends no bursts of its own
        self._names("rifar", "rin", "rif", "198.18", tag)
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


class DelayLink(_FarSide):
    def __init__(self, rtt_ms, delayline, mtu=9000, buffer_mib=64, tag=None):
        self.rtt_ms, self.mtu, self.buffer_mib = rtt_ms, mtu, buffer_mib
        self.proc, self.stats = None, None
        self._names("ridly", "rdn", "rdf", "198.19", tag)
        try:
            self._up(delayline)
        except (subprocess.CalledProcessError, RuntimeError) as e:
            self.close()
            why = f"{' '.join(e.cmd)}: {e.stderr}" if hasattr(e, "cmd") else str(e)
            raise RuntimeError(f"cannot make the delay line: {why}") from e

    def _up(self, delayline):
        _ip("netns", "del", self.ns, check=False)
        _ip("netns", "add", self.ns)
        self.proc = subprocess.Popen(
            [delayline, "--delay-ms", str(self.rtt_ms), "--mtu", str(self.mtu),
             "--buffer-mib", str(self.buffer_mib), "--a", f":{self.near_dev}",
             "--b", f"{self.ns}:{self.far_dev}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"ri-delayline: {self.proc.stderr.read().strip()}")
        _ip("addr", "add", f"{self.near_addr}/30", "dev", self.near_dev)
        # A TUN's queue (500 packets by default) is where a burst waits for
        # the delay line's next read; full, the kernel drops what comes,
        # before the delay line sees it. A long path's router has a deeper
        # queue than 500 packets, and a delay line should delay, not drop:
        # 10000 packets (90 MB at MTU 9000), and what is dropped anyway is
        # counted (tun_tx_dropped in the stats).
        _ip("link", "set", self.near_dev, "txqueuelen", str(self.TUN_QLEN), "up")
        _ip("-n", self.ns, "addr", "add", f"{self.far_addr}/30", "dev", self.far_dev)
        _ip("-n", self.ns, "link", "set", self.far_dev, "txqueuelen", str(self.TUN_QLEN), "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        time.sleep(0.1)

    TUN_QLEN = 10000

    def _tx_dropped(self):
        """Packets the two TUN devices dropped at their queues."""
        n = 0
        for pre, dev in (([], self.near_dev), (["-n", self.ns], self.far_dev)):
            r = subprocess.run(["ip", *pre, "-s", "-j", "link", "show", "dev", dev],
                               capture_output=True, text=True)
            try:
                n += json.loads(r.stdout)[0]["stats64"]["tx"]["dropped"]
            except (ValueError, IndexError, KeyError):
                pass
        return n

    def _stop(self):
        """Ends the delay line (its TUN devices go with it); keeps its counters."""
        if self.proc and self.proc.poll() is None:
            dropped = self._tx_dropped()
            self.proc.terminate()
            try:
                out, _ = self.proc.communicate(timeout=5)
                self.stats = json.loads(out.strip().splitlines()[-1])
                self.stats["tun_tx_dropped"] = dropped
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                self.proc.kill()
                self.proc.wait()


@atexit.register
def _cleanup():
    for link in list(_open):
        link.close()
