"""harness.py -- what every integration test uses (Python 3 stdlib only).

A test is a plain function `test_x(env)` in tests/integ/test_*.py; the runner
(tests/run.py) gives it a fresh `Env` and closes it afterwards, whatever
happened. Through the Env a test:

  * picks free ports:            env.port(), env.ports(n)
  * starts a hub and edges:      env.hub(...), env.edge(...)   (configs in env.dir)
  * starts upstream servers:     env.upstream(port)  (threaded echo server that
                                 records each connection's PROXY v1 line) or
                                 env.listen(port) for a hand-driven one
  * connects clients:            env.connect(host, port), pump() for bulk data
  * runs the CLI:                env.run_core([...])
  * runs other daemons:          env.spawn(name, argv)  (HAProxy, nginx)

Synchronisation is on observable events only -- a log line appearing
(Proc.wait_log), a port listening (wait_listening), a connection arriving --
each with an explicit, generous deadline scaled by SCALE (the runner raises it
for sanitizer builds). Nothing sleeps to let something happen.

Env.close() stops every process it started (SIGCONT, SIGTERM, a second
SIGTERM, then SIGKILL of the process group), closes every socket and server,
and reports problems the test itself did not look for: sanitizer reports in a
ri-core log, a ri-core that crashed or would not stop, a secret in a log.
An atexit hook kills any process group still alive, even after a crash of the
runner.
"""
import atexit
import errno
import hashlib
import json
import os
import random
import re
import resource
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Multiplies every deadline; the runner sets it (3 for sanitizer builds).
SCALE = float(os.environ.get("RI_TEST_SCALE", "1"))

# The runner exports RI_SANITIZED=1 for a sanitizer build (whose allocator
# is not glibc's, so memory figures mean something else there).
SANITIZED = os.environ.get("RI_SANITIZED") == "1"

SANITIZER_RE = re.compile(r"ERROR: \w*Sanitizer|runtime error:|SUMMARY: \w*Sanitizer")
# a log line that says the same thing twice ("syntax error: syntax error")
REPEATED_RE = re.compile(r"\b([A-Za-z][\w '-]{7,}): \1\b", re.I)


class TestFailure(AssertionError):
    pass


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def T(secs):
    """A deadline in seconds, scaled for slow (sanitizer) builds."""
    return secs * SCALE


def timeout(secs):
    """Decorator: this test may run up to `secs` (scaled) seconds."""
    def deco(fn):
        fn.timeout = secs
        return fn
    return deco


# ---- process bookkeeping that survives anything -------------------------------
_LIVE = set()  # Popen objects not yet reaped


def _kill_all():
    for p in list(_LIVE):
        try:
            os.killpg(p.pid, signal.SIGCONT)
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            p.wait(timeout=5)
        except Exception:
            pass
        _LIVE.discard(p)


atexit.register(_kill_all)


def rss_mib(pid):
    """Resident set size of a process, MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def raise_nofile(want=65536):
    """Raise RLIMIT_NOFILE (children inherit it). Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    for lim in ((want, max(want, hard if hard != resource.RLIM_INFINITY else want)),
                (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, lim)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- ports -----------------------------------------------------------------------
_handed_out = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _can_bind(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        # no SO_REUSEADDR: a port with TIME_WAIT leftovers is skipped too
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(hosts=("127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")):
    """A TCP port bindable right now on every host in `hosts`, never handed out
    before in this run. Chosen outside the kernel's ephemeral range, so no
    outgoing connection of any test (or of ri-core) can take it between the
    check and the bind by the process that is meant to listen on it."""
    lo, hi = _ephemeral_range()
    ranges = [(10000, lo - 1)] if lo > 11000 else [(hi + 1, 65535)]
    rnd = random.Random(os.getpid() ^ int(time.time() * 1e6))
    for _ in range(2000):
        a, b = ranges[0]
        p = rnd.randint(a, b)
        if p in _handed_out:
            continue
        if all(_can_bind(h, p) for h in hosts):
            _handed_out.add(p)
            return p
    # fall back on the kernel's choice (ephemeral range)
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _handed_out and all(_can_bind(h, p) for h in hosts):
            _handed_out.add(p)
            return p
    fail("could not find a free TCP port")


def listening_ports():
    """Set of (ip, port) in LISTEN state, from /proc/net/tcp{,6}."""
    out = set()
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            if len(parts) < 4 or parts[3] != "0A":
                continue
            addr, port = parts[1].split(":")
            raw = bytes.fromhex(addr)
            if v6:
                # four little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = socket.inet_ntop(socket.AF_INET6, raw)
            else:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.add((ip, int(port, 16)))
    return out


def is_listening(host, port):
    ls = listening_ports()
    if (host, port) in ls:
        return True
    wild = "::" if ":" in host else "0.0.0.0"
    return (wild, port) in ls or ("::", port) in ls


class Ctl:
    """A control socket, one request per connection: ctl("status") returns
    the answer, which must say ok."""

    def __init__(self, path):
        self.path = path

    def __call__(self, cmd, **args):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(T(20))
        try:
            s.connect(self.path)
            s.sendall((json.dumps(dict(cmd=cmd, **args)) + "\n").encode())
            buf = b""
            while b"\n" not in buf:
                d = s.recv(65536)
                if not d:
                    fail(f"control socket {self.path} closed instead of answering")
                buf += d
        finally:
            s.close()
        a = json.loads(buf.split(b"\n", 1)[0])
        check(a.get("ok") is True, f"{cmd}: {a}")
        return a


def wait_until(pred, timeout_s, what, interval=0.02):
    """Polls pred() until true; fails naming `what` after timeout_s (scaled)."""
    end = time.monotonic() + T(timeout_s)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            fail(f"timed out after {T(timeout_s):.0f}s waiting for {what}")
        time.sleep(interval)


def wait_listening(host, port, timeout_s=20, proc=None):
    def ok():
        if proc is not None and proc.poll() is not None:
            fail(f"{proc.name} exited (rc {proc.poll()}) before listening on {host}:{port}")
        return is_listening(host, port)
    wait_until(ok, timeout_s, f"a listener on {host}:{port}")


# ---- processes ---------------------------------------------------------------------
class Proc:
    """A child process in its own process group, output (stdout+stderr) in a
    log file inside the test's folder."""

    def __init__(self, env, name, argv, kind="other", cwd=None, extra_env=None, stdin=None):
        self.env = env
        self.name = name
        self.argv = list(argv)
        self.kind = kind
        self.log_path = os.path.join(env.dir, f"{name}.log")
        n = 2
        while os.path.exists(self.log_path):
            self.log_path = os.path.join(env.dir, f"{name}-{n}.log")
            n += 1
        self.stopped_by_us = False
        self.stop_problem = None
        self._sent_signals = []
        e = dict(os.environ)
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        e.setdefault("TSAN_OPTIONS", f"suppressions={ROOT}/tests/tsan.supp second_deadlock_stack=1")
        if extra_env:
            e.update(extra_env)
        with open(self.log_path, "ab") as logf:
            self.p = subprocess.Popen(self.argv, stdin=stdin or subprocess.DEVNULL, stdout=logf,
                                      stderr=subprocess.STDOUT, cwd=cwd or env.dir, env=e,
                                      start_new_session=True)
        _LIVE.add(self.p)
        self.pid = self.p.pid
        env.procs.append(self)
        env.debug(f"started {name} pid {self.pid}: {' '.join(self.argv)}")

    # -- state
    def poll(self):
        rc = self.p.poll()
        if rc is not None:
            _LIVE.discard(self.p)
        return rc

    def alive(self):
        return self.poll() is None

    def wait_exit(self, timeout_s, what=None):
        try:
            rc = self.p.wait(timeout=T(timeout_s))
        except subprocess.TimeoutExpired:
            fail(f"{self.name} did not exit within {T(timeout_s):.0f}s"
                 + (f" ({what})" if what else ""))
        _LIVE.discard(self.p)
        return rc

    def fds(self):
        """Number of open file descriptors (for leak checks)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def signal(self, sig):
        self._sent_signals.append(sig)
        self.p.send_signal(sig)

    # -- log
    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def mark(self):
        """Position in the log: wait_log(since=mark) only sees later lines."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, mark):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def lines_since(self, mark):
        """log_since() up to its last newline: a line still being written
        (\b would match at its current end) is never looked at."""
        text = self.log_since(mark)
        return text[:text.rfind("\n") + 1]

    def count(self, pattern, since=0):
        return len(re.findall(pattern, self.lines_since(since)))

    def wait_log(self, pattern, timeout_s=20, since=0, count=1, allow_exit=False):
        """Waits until `pattern` (regex) has matched `count` times in the log
        after `since`; returns the last match. Fails early if the process
        exits first (unless allow_exit)."""
        rx = re.compile(pattern)
        end = time.monotonic() + T(timeout_s)
        while True:
            ms = list(rx.finditer(self.lines_since(since)))
            if len(ms) >= count:
                return ms[count - 1]
            if not allow_exit and self.poll() is not None:
                # one last read: the line may have been written just before exit
                ms = list(rx.finditer(self.lines_since(since)))
                if len(ms) >= count:
                    return ms[count - 1]
                fail(f"{self.name} exited (rc {self.poll()}) while waiting for log "
                     f"/{pattern}/ x{count}")
            if time.monotonic() > end:
                fail(f"{self.name}: no log line matching /{pattern}/ (x{count}) "
                     f"within {T(timeout_s):.0f}s")
            time.sleep(0.02)

    def tail(self, n=40):
        lines = self.log().splitlines()
        return "\n".join(lines[-n:])

    # -- stopping
    def stop(self, grace_s=10):
        """SIGCONT, SIGTERM, wait, second SIGTERM (ri-core: close now), wait,
        then SIGKILL the group. Records a problem if a ri-core needed the kill
        or died of a crash signal."""
        if self.poll() is not None:
            self._reap_group()
            return
        self.stopped_by_us = True
        try:
            os.killpg(self.pid, signal.SIGCONT)
        except OSError:
            pass
        for attempt in range(2):
            try:
                self.p.send_signal(signal.SIGTERM)
            except OSError:
                pass
            try:
                self.p.wait(timeout=T(grace_s) if attempt == 0 else T(min(5, grace_s)))
                break
            except subprocess.TimeoutExpired:
                continue
        if self.p.poll() is None:
            if self.kind == "core":
                self.stop_problem = f"{self.name} did not exit after two SIGTERMs: killed"
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._reap_group()
        _LIVE.discard(self.p)

    def _reap_group(self):
        """SIGKILL what is left of our process group (nginx workers...). The
        group is only killed while its leader is ours and unreaped, or when
        its members are not processes another Proc started (pid reuse)."""
        if self.p.returncode is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            return
        ours = {p.pid for p in _LIVE}
        for pid in _group_members(self.pid):
            if pid not in ours:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def crash_problem(self):
        rc = self.p.poll()
        if rc is None or self.kind != "core":
            return None
        if rc < 0 and -rc in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE,
                              signal.SIGILL):
            return f"{self.name} died of signal {signal.Signals(-rc).name}"
        return None


def _group_members(pgid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            out.append(int(d))
    return out


# ---- configs -------------------------------------------------------------------------
def _pin_workers(kv, opts):
    """RI_TEST_WORKERS pins `workers` of every hub and edge for a whole run
    (make test runs the suite with 2, then 1); a test's own setting wins."""
    if os.environ.get("RI_TEST_WORKERS") and "workers" not in opts:
        kv["workers"] = int(os.environ["RI_TEST_WORKERS"])


def _cfg_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if ("." in r or "e" in r) else r + ".0"
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(_cfg_value(x) for x in v) + " ]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def new_secret():
    return "s3cr3t-" + os.urandom(18).hex()


class EdgeSpec:
    """An edge as the hub knows it."""

    def __init__(self, id, ports=(), secret=None, **extra):
        self.id = id
        self.ports = list(ports)
        self.secret = secret or new_secret()
        self.extra = extra

    def cfg(self):
        kv = {"id": self.id, "secret": self.secret, "listen_ports": self.ports}
        kv.update(self.extra)
        return "{ " + " ".join(f"{k} = {_cfg_value(v)};" for k, v in kv.items()) + " }"


HUB_DEFAULTS = {
    # no certificate kept between a test's hub starts unless a test asks for
    # one (and never in the default /var/lib/ri of the machine)
    "state_dir": "",
    "handshake_timeout_secs": 10,
    "connect_timeout_secs": 10,
    "drain_timeout_secs": 2,
}
EDGE_DEFAULTS = {
    # no STUN unless a test asks (the default servers are on the Internet)
    "stun_servers": [],
    "reconnect_min_secs": 0.2,
    "reconnect_max_secs": 1.0,
    "drain_timeout_secs": 2,
}


class Hub(Proc):
    pass


class Peer(Proc):
    """ri-peer (tests/tools/ri_peer.c): a tunnel peer that knows the secret
    and does what the test tells it. Its output -- "READY", one "< TYPE
    stream=N len=L ..." line per frame received, "CLOSED why" -- is its log,
    so wait_log() waits for frames."""

    def send(self, line):
        """One command line (commands separated by " ; " go out in one write);
        waits for the tool's "OK" for it."""
        m = self.mark()
        try:
            self.p.stdin.write((line + "\n").encode())
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            fail(f"{self.name} is gone (sending {line!r}):\n{self.tail(10)}")
        if line.strip() != "quit":
            self.wait_log(r"(?m)^OK$", since=m)
        return m

    def frames(self, pattern, since=0):
        """The frame lines matching pattern, after since."""
        return re.findall(pattern, self.lines_since(since))

    def data_bytes(self, stream, since=0):
        return sum(int(x) for x in
                   re.findall(r"< DATA stream=%d len=(\d+)" % stream, self.lines_since(since)))


class Edge(Proc):
    pass


# ---- upstream servers --------------------------------------------------------------
class UConn:
    """One connection an Upstream accepted."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.hdr = bytearray()
        self.proxy_line = None   # bytes, with CRLF
        self.nbytes = 0          # payload bytes after the PROXY line
        self.sha = hashlib.sha256()
        self.head = bytearray()  # first 64 KiB of payload
        self.out = bytearray()
        self.eof = False
        self.reset = False
        self.closed = False
        self.reading = True

    def digest(self):
        return self.sha.hexdigest()


class Upstream:
    """An upstream server in a thread (selectors). Per connection it first
    reads the PROXY v1 line (proxy=True), then, mode "echo": echoes every byte
    and, on EOF, finishes echoing, shuts its write side and closes; mode
    "hold": counts bytes, never writes, closes after EOF; mode "source": sends
    source_bytes of b"y" at once (after the PROXY line), then behaves as
    "hold". Every byte of
    payload is hashed (UConn.digest())."""

    def __init__(self, env, host, port, proxy=True, mode="echo", name=None,
                 source_bytes=4 << 20):
        self.source_bytes = source_bytes
        self.env = env
        self.host, self.port = host, port
        self.proxy = proxy
        self.mode = mode
        self.name = name or f"upstream:{port}"
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.rpipe, self.wpipe = os.pipe()
        os.set_blocking(self.rpipe, False)
        self.sel.register(self.rpipe, selectors.EVENT_READ, "wake")
        self.conns = []
        self.events = []  # short history for failure reports
        self.errors = []
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()
        env.closers.append(self.close)
        env.upstreams.append(self)

    def _event(self, msg):
        if len(self.events) < 5000:
            self.events.append(f"{time.monotonic():.3f} {msg}")

    # -- loop
    def _run(self):
        try:
            while not self.stopping:
                for key, ev in self.sel.select(timeout=0.5):
                    if key.data == "wake":
                        try:
                            os.read(self.rpipe, 4096)
                        except BlockingIOError:
                            pass
                    elif key.data is None:
                        self._accept()
                    else:
                        c = key.data
                        if ev & selectors.EVENT_READ and not c.closed:
                            self._read(c)
                        if ev & selectors.EVENT_WRITE and not c.closed:
                            self._write(c)
        except Exception as e:  # reported by close()
            self.errors.append(f"{self.name} loop crashed: {e!r}")
            with self.cond:
                self.cond.notify_all()

    def _accept(self):
        while True:
            try:
                s, peer = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.errors.append(f"accept: {e}")
                return
            s.setblocking(False)
            c = UConn(s, peer)
            self._event(f"accepted {peer}")
            with self.cond:
                self.conns.append(c)
                if not self.proxy:
                    self.cond.notify_all()
            self.sel.register(s, selectors.EVENT_READ, c)

    def _interest(self, c):
        ev = 0
        if c.reading:
            ev |= selectors.EVENT_READ
        if c.out:
            ev |= selectors.EVENT_WRITE
        if not ev:
            if c.eof:
                self._after_eof(c)
                return
            ev = selectors.EVENT_READ
        self.sel.modify(c.sock, ev, c)

    def _close(self, c):
        if c.closed:
            return
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        with self.cond:
            c.closed = True
            self.cond.notify_all()

    def _read(self, c):
        try:
            data = c.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            self._event(f"{c.peer}: reset")
            with self.cond:
                c.reset = True
            self._close(c)
            return
        if not data:
            self._event(f"{c.peer}: EOF after {c.nbytes} bytes")
            with self.cond:
                c.eof = True
                c.reading = False
                self.cond.notify_all()
            self._after_eof(c)
            return
        if self.proxy and c.proxy_line is None:
            c.hdr += data
            i = c.hdr.find(b"\r\n")
            if i < 0:
                if len(c.hdr) > 107:
                    self.errors.append(f"{c.peer}: no CRLF in the first 108 bytes: "
                                       f"{bytes(c.hdr[:120])!r}")
                    with self.cond:
                        c.proxy_line = b""
                        self.cond.notify_all()
                    data = bytes(c.hdr)
                else:
                    return
            else:
                line, data = bytes(c.hdr[:i + 2]), bytes(c.hdr[i + 2:])
                self._event(f"{c.peer}: {line!r}")
                with self.cond:
                    c.proxy_line = line
                    self.cond.notify_all()
            if self.mode == "source":
                c.out += b"y" * self.source_bytes
                self._write(c)
                if c.closed:
                    return
            if not data:
                return
        c.nbytes += len(data)
        c.sha.update(data)
        if len(c.head) < 65536:
            c.head += data[:65536 - len(c.head)]
        if self.mode == "echo":
            c.out += data
            self._write(c)
            if c.closed:
                return
            if len(c.out) > (4 << 20) and c.reading:
                c.reading = False  # back-pressure until the client reads
                self._interest(c)
        with self.cond:
            self.cond.notify_all()

    def _write(self, c):
        while c.out:
            try:
                n = c.sock.send(c.out[:1 << 20])
            except (BlockingIOError, InterruptedError):
                break
            except (ConnectionResetError, BrokenPipeError):
                self._event(f"{c.peer}: reset while writing")
                with self.cond:
                    c.reset = True
                self._close(c)
                return
            del c.out[:n]
        if not c.out and not c.eof and not c.reading:
            c.reading = True
        if not c.out and c.eof:
            self._after_eof(c)
            return
        self._interest(c)

    def _after_eof(self, c):
        if c.out:
            self._interest(c)
            return
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._close(c)

    # -- for tests
    def wait(self, pred, timeout_s, what):
        end = time.monotonic() + T(timeout_s)
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                if self.errors:
                    fail(f"{self.name}: {self.errors[0]}")
                left = end - time.monotonic()
                if left <= 0:
                    fail(f"{self.name}: timed out after {T(timeout_s):.0f}s waiting for {what}")
                self.cond.wait(min(left, 0.5))

    def wait_conns(self, n, timeout_s=20):
        """Waits for n connections whose PROXY line has arrived; returns them."""
        if self.proxy:
            self.wait(lambda: sum(1 for c in self.conns if c.proxy_line is not None) >= n,
                      timeout_s, f"{n} connection(s) with a PROXY line (have "
                      f"{sum(1 for c in self.conns if c.proxy_line is not None)})")
        else:
            self.wait(lambda: len(self.conns) >= n, timeout_s, f"{n} connection(s)")
        return list(self.conns)

    def proxy_lines(self):
        with self.cond:
            return [c.proxy_line for c in self.conns if c.proxy_line is not None]

    def close(self):
        self.stopping = True
        try:
            os.write(self.wpipe, b"x")
        except OSError:
            pass
        self.thread.join(10)
        for c in list(self.conns):
            if not c.closed:
                try:
                    c.sock.close()
                except OSError:
                    pass
        for fd in (self.rpipe, self.wpipe):
            try:
                os.close(fd)
            except OSError:
                pass
        self.lsock.close()
        try:
            self.sel.close()
        except Exception:
            pass

    def summary(self):
        lines = [f"{self.name} ({self.mode}, proxy={self.proxy}): {len(self.conns)} connection(s)"]
        lines += [f"  error: {e}" for e in self.errors[:5]]
        lines += ["  " + e for e in self.events[-15:]]
        return "\n".join(lines)


# ---- plain socket helpers --------------------------------------------------------------
def recv_exact(sock, n, what="data"):
    buf = bytearray()
    while len(buf) < n:
        try:
            d = sock.recv(min(n - len(buf), 262144))
        except socket.timeout:
            fail(f"timed out reading {what}: got {len(buf)} of {n} bytes")
        if not d:
            fail(f"EOF reading {what}: got {len(buf)} of {n} bytes: {bytes(buf[:80])!r}")
        buf += d
    return bytes(buf)


def recv_until_eof(sock, what="data", limit=1 << 30):
    buf = bytearray()
    while True:
        try:
            d = sock.recv(262144)
        except socket.timeout:
            fail(f"timed out waiting for EOF ({what}) after {len(buf)} bytes")
        if not d:
            return bytes(buf)
        buf += d
        if len(buf) > limit:
            fail(f"more than {limit} bytes reading {what}")


def read_proxy_line(sock):
    """Reads up to and including the first CRLF (a PROXY v1 line is at most
    107 bytes); returns (line, bytes read past it)."""
    buf = bytearray()
    while b"\r\n" not in buf:
        if len(buf) > 107:
            fail(f"no CRLF in the first {len(buf)} bytes: {bytes(buf)!r}")
        try:
            d = sock.recv(4096)
        except socket.timeout:
            fail(f"timed out reading the PROXY line, have {bytes(buf)!r}")
        if not d:
            fail(f"EOF before the PROXY line ended: {bytes(buf)!r}")
        buf += d
    i = buf.index(b"\r\n") + 2
    return bytes(buf[:i]), bytes(buf[i:])


def expect_closed(sock, within_s, what="connection"):
    """The peer must end the connection (EOF or reset) within `within_s`
    (scaled) seconds; anything it sent first is discarded. Returns
    ("eof"|"reset", seconds)."""
    t0 = time.monotonic()
    end = t0 + T(within_s)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            fail(f"{what} still open after {T(within_s):.1f}s (hang)")
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            fail(f"{what} still open after {T(within_s):.1f}s (hang)")
        except (ConnectionResetError, BrokenPipeError):
            return "reset", time.monotonic() - t0
        if not d:
            return "eof", time.monotonic() - t0


def echo_check(sock, payload=None, what="echo"):
    """Sends payload and expects exactly it back."""
    payload = payload or os.urandom(1000)
    sock.sendall(payload)
    got = recv_exact(sock, len(payload), what)
    check(got == payload, f"{what}: echoed bytes differ")


def pump(addrs, payloads, timeout_s=120, bind=None):
    """Bulk client: one connection per payload (addrs: one (host, port) or a
    list), all at once through one selector. Each sends its payload, shuts
    down its write side, and reads until EOF, hashing what comes back.
    Returns a list of dicts: local (addr, port), sent_sha, recv_sha, recv_len,
    error. Fails on a deadline (scaled)."""
    if isinstance(addrs, tuple):
        addrs = [addrs] * len(payloads)
    sel = selectors.DefaultSelector()
    states = []
    try:
        for addr, data in zip(addrs, payloads):
            fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            if bind:
                s.bind((bind, 0))
            s.setblocking(False)
            err = s.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                s.close()
                fail(f"connect {addr}: {os.strerror(err)}")
            st = {"sock": s, "data": memoryview(data), "off": 0, "shut": False, "eof": False,
                  "sha": hashlib.sha256(), "recv_len": 0, "error": None, "connected": False,
                  "sent_sha": hashlib.sha256(data).hexdigest()}
            states.append(st)
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
        left = len(states)
        end = time.monotonic() + T(timeout_s)
        while left:
            if time.monotonic() > end:
                fail(f"pump: {left} of {len(states)} streams unfinished after "
                     f"{T(timeout_s):.0f}s; e.g. sent {states[0]['off']}, got "
                     f"{states[0]['recv_len']}")
            for key, ev in sel.select(timeout=1.0):
                st = key.data
                s = st["sock"]
                done_before = st["eof"] and st["shut"]
                if ev & selectors.EVENT_WRITE and not st["shut"]:
                    if not st["connected"]:
                        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if e:
                            st["error"] = f"connect: {os.strerror(e)}"
                            st["eof"] = st["shut"] = True
                        st["connected"] = True
                    while not st["shut"] and st["off"] < len(st["data"]):
                        try:
                            n = s.send(st["data"][st["off"]:st["off"] + 262144])
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError as e:
                            st["error"] = f"send: {e}"
                            st["eof"] = st["shut"] = True
                            break
                        st["off"] += n
                    if not st["shut"] and st["off"] >= len(st["data"]):
                        s.shutdown(socket.SHUT_WR)
                        st["shut"] = True
                if ev & selectors.EVENT_READ and not st["eof"]:
                    for _ in range(16):
                        try:
                            d = s.recv(262144)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError as e:
                            st["error"] = f"recv: {e}"
                            st["eof"] = st["shut"] = True
                            break
                        if not d:
                            st["eof"] = True
                            break
                        st["recv_len"] += len(d)
                        st["sha"].update(d)
                if st["eof"] and st["shut"] and not done_before:
                    sel.unregister(s)
                    left -= 1
                elif st["shut"] and not st["eof"]:
                    sel.modify(s, selectors.EVENT_READ, st)
        res = []
        for st in states:
            try:
                local = st["sock"].getsockname()
            except OSError:
                local = None
            res.append({"local": local, "sent_sha": st["sent_sha"],
                        "recv_sha": st["sha"].hexdigest(), "recv_len": st["recv_len"],
                        "sent_len": st["off"], "error": st["error"]})
        return res
    finally:
        for st in states:
            st["sock"].close()
        sel.close()


# ---- the per-test environment ---------------------------------------------------------------
class Env:
    def __init__(self, build, name, verbose=False):
        self.build = os.path.abspath(build)
        self.core = os.path.join(self.build, "ri-core")
        self.plugin_dir = os.path.join(self.build, "plugins")
        self.name = name
        self.verbose = verbose
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        self.dir = tempfile.mkdtemp(prefix=f"ri-{safe}-")
        self.procs = []
        self.closers = []
        self.upstreams = []
        self.secrets = set()
        self.notes = []
        self.closed = False

    def debug(self, msg):
        self.notes.append(msg)
        if self.verbose:
            print(f"    [{self.name}] {msg}", flush=True)

    # -- files
    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text, mode=0o600):
        """Writes a file of the test's folder; owner-only by default, as a
        config holding secrets should be (ri-core warns otherwise)."""
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    # -- ports
    def port(self, hosts=("127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")):
        return free_port(hosts)

    def ports(self, n, hosts=("127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")):
        return [free_port(hosts) for _ in range(n)]

    # -- ri-core configs and processes
    def hub_config(self, port, edges, listen_host="127.0.0.1", target_host="127.0.0.1",
                   header=True, log_level="info", plugins=None, handover=None, top=None,
                   **opts):
        """top: more top-level settings ({"access_log": "-"})."""
        kv = dict(HUB_DEFAULTS)
        _pin_workers(kv, opts)
        kv.update(opts)
        for e in edges:
            self.secrets.add(e.secret)
        pl = plugins if plugins is not None else (
            ['{ name = "auth_secret"; }'] + (['{ name = "header_proxy_v1"; }'] if header else []))
        lh = f"[{listen_host}]" if ":" in listen_host else listen_host
        lines = [
            'role = "hub";',
            f'log_level = "{log_level}";',
            f"plugin_dir = {_cfg_value(self.plugin_dir)};",
            "plugins = ( " + ", ".join(pl) + " );",
        ] + ([f"handover_socket = {_cfg_value(handover)};"] if handover else []) + [
            f"{k} = {_cfg_value(v)};" for k, v in (top or {}).items()] + [
            "hub = {",
            f'  listen = "{lh}:{port}";',
            f"  target_host = {_cfg_value(target_host)};",
        ]
        lines += [f"  {k} = {_cfg_value(v)};" for k, v in kv.items()]
        lines.append("  edges = (")
        lines.append(",\n".join("    " + e.cfg() for e in edges))
        lines.append("  );")
        lines.append("};")
        return "\n".join(lines) + "\n"

    def edge_config(self, hub_port, edge_id, secret, bind="127.0.0.2", hub_host="127.0.0.1",
                    log_level="info", token=None, listen_opts="", plugins_extra=(), handover=None,
                    top=None, **opts):
        """plugins_extra: more plugin entries after auth and listener (e.g. a
        scheduler, so both sides of the tunnel run the same policy)."""
        kv = dict(EDGE_DEFAULTS)
        _pin_workers(kv, opts)
        kv.update(opts)
        if secret:
            self.secrets.add(secret)
        lines = [
            'role = "edge";',
            f'log_level = "{log_level}";',
            f"plugin_dir = {_cfg_value(self.plugin_dir)};",
            'plugins = ( { name = "auth_secret"; }, { name = "listen_tcp"; '
            + listen_opts + " }" + "".join(", " + p for p in plugins_extra) + " );",
        ] + ([f"handover_socket = {_cfg_value(handover)};"] if handover else []) + [
            f"{k} = {_cfg_value(v)};" for k, v in (top or {}).items()] + [
            "edge = {",
        ]
        if token:
            lines.append(f"  token = {_cfg_value(token)};")
        else:
            lines += [f"  hub_host = {_cfg_value(hub_host)};", f"  hub_port = {hub_port};",
                      f"  edge_id = {_cfg_value(edge_id)};", f"  secret = {_cfg_value(secret)};"]
        lines.append(f"  bind_address = {_cfg_value(bind)};")
        lines += [f"  {k} = {_cfg_value(v)};" for k, v in kv.items() if v is not None]
        lines.append("};")
        return "\n".join(lines) + "\n"

    def start_core(self, name, cfg_path, cls=Proc, args=(), wrap=(), extra_env=None):
        """Starts ri-core -c cfg_path; `wrap` is an argv prefix that execs
        it (e.g. ["prlimit", "--nofile=24"]), so the pid stays ri-core's."""
        return cls(self, name, [*wrap, self.core, "-c", cfg_path, *args], kind="core",
                   extra_env=extra_env)

    def peer(self, role, addr, edge_id, secret, *opts, name=None, wait=True):
        """Starts ri-peer as a rogue `role` ("edge": connects to addr; "hub":
        listens on addr). With wait, an edge waits for READY (authenticated)
        and a hub for LISTENING."""
        exe = os.path.join(self.build, "ri-peer")
        check(os.access(exe, os.X_OK), f"{exe} not built (make builds it with the tests)")
        flag = "--connect" if role == "edge" else "--listen"
        p = Peer(self, name or f"peer-{role}", [exe, role, flag, addr, "--id", edge_id,
                                                 "--secret", secret, "--plugin",
                                                 os.path.join(self.plugin_dir, "auth_secret.so"),
                                                 *opts], kind="tool", stdin=subprocess.PIPE)
        self.secrets.add(secret)
        if wait:
            p.wait_log(r"(?m)^(READY|TLS-UP)$" if role == "edge" and "--raw" in opts
                       else r"(?m)^READY$" if role == "edge" else r"(?m)^LISTENING$")
        return p

    def hub(self, edges, port=None, name="hub", wait=True, args=(), extra_env=None, **opts):
        """Writes NAME.cfg and starts a hub; waits for its listener. The
        returned Hub has .port, .cfg_path, .edges and .opts. When the port
        was picked here and turns out taken after all, picks another."""
        for attempt in range(3):
            hub_port = port or self.port()
            cfg = self.write(f"{name}.cfg", self.hub_config(hub_port, edges, **opts))
            h = self.start_core(name, cfg, cls=Hub, args=args, extra_env=extra_env)
            h.port, h.cfg_path, h.edges, h.opts = hub_port, cfg, list(edges), dict(opts)
            if not wait:
                return h
            try:
                h.wait_log(r"hub: listening on \S+:%d " % hub_port)
                return h
            except TestFailure:
                if port or attempt == 2 or "Address already in use" not in h.log():
                    raise
                self.debug(f"hub port {hub_port} was taken: trying another")
        return h

    def rewrite_hub(self, hub, edges=None, **opts):
        """Rewrites the hub's config file (same port), for a SIGHUP reload."""
        if edges is not None:
            hub.edges = list(edges)
        hub.opts.update(opts)
        with open(hub.cfg_path, "w") as f:
            f.write(self.hub_config(hub.port, hub.edges, **hub.opts))

    def reload_with(self, hub, **opts):
        """rewrite_hub(hub, **opts), then SIGHUP it; returns the log mark."""
        self.rewrite_hub(hub, **opts)
        return self.reload(hub)

    def reload(self, proc, expect_ok=True, timeout_s=20):
        """SIGHUP and wait for the reload's outcome line."""
        m = proc.mark()
        proc.signal(signal.SIGHUP)
        if proc.kind == "core" and isinstance(proc, Hub):
            pat = r"hub: reloaded " if expect_ok else r"hub: reload failed"
        else:
            pat = r"edge: reloaded " if expect_ok else r"edge: reload failed"
        proc.wait_log(pat, timeout_s, since=m)
        return m

    def restart_hub(self, hub, name="hub", wait=True):
        h = self.start_core(name, hub.cfg_path, cls=Hub)
        h.port, h.cfg_path, h.edges, h.opts = hub.port, hub.cfg_path, hub.edges, hub.opts
        if wait:
            h.wait_log(r"hub: listening on \S+:%d " % hub.port)
        return h

    def edge(self, hub, spec, bind="127.0.0.2", name=None, wait=True, wait_ports=None,
             secret=None, edge_id=None, args=(), **opts):
        """Starts an edge for EdgeSpec `spec` of `hub` (or a hub port);
        waits until it is connected and listens on every port of the spec
        (or on wait_ports)."""
        name = name or f"edge-{spec.id}"
        hub_port = hub.port if isinstance(hub, Proc) else hub
        cfg = self.write(f"{name}.cfg",
                         self.edge_config(hub_port, edge_id or spec.id, secret or spec.secret,
                                          bind=bind, **opts))
        e = self.start_core(name, cfg, cls=Edge, args=args)
        e.spec, e.bind, e.cfg_path = spec, bind, cfg
        if wait:
            self.wait_edge_ready(e, wait_ports if wait_ports is not None else spec.ports)
        return e

    def wait_edge_ready(self, e, ports, since=0, timeout_s=20):
        e.wait_log(r"edge \S+: connected to hub", timeout_s, since=since)
        for p in ports:
            e.wait_log(r"listening on %s port %d\b" % (re.escape(e.bind), p), timeout_s,
                       since=since)

    def pair(self, ports, edge_id="edge-1", bind="127.0.0.2", hub_opts=None, edge_opts=None):
        """A hub with one edge listening on `ports`; returns (hub, edge, spec)."""
        spec = EdgeSpec(edge_id, ports)
        h = self.hub([spec], **(hub_opts or {}))
        e = self.edge(h, spec, bind=bind, **(edge_opts or {}))
        return h, e, spec

    def run_core(self, args, timeout_s=30, cwd=None, input=None):
        """Runs ri-core to completion; returns CompletedProcess (text)."""
        try:
            r = subprocess.run([self.core, *args], capture_output=True, text=True,
                               timeout=T(timeout_s), cwd=cwd or self.dir, input=input,
                               errors="replace")
        except subprocess.TimeoutExpired:
            fail(f"ri-core {' '.join(args)} did not finish within {T(timeout_s):.0f}s")
        self.debug(f"ri-core {' '.join(args)} -> rc {r.returncode}\n{r.stdout}{r.stderr}")
        m = SANITIZER_RE.search(r.stdout + r.stderr)
        if m:
            fail(f"sanitizer report from ri-core {' '.join(args)}:\n{r.stderr[-3000:]}")
        m = REPEATED_RE.search(r.stdout + r.stderr)
        if m:
            fail(f"ri-core {' '.join(args)} says the same thing twice: {m.group(0)!r}")
        return r

    def spawn(self, name, argv, cwd=None):
        return Proc(self, name, argv, kind="other", cwd=cwd)

    # -- upstreams and clients
    def upstream(self, port, host="127.0.0.1", **kw):
        return Upstream(self, host, port, **kw)

    def listen(self, port, host="127.0.0.1", timeout_s=20):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(128)
        s.settimeout(T(timeout_s))
        self.closers.append(s.close)
        return s

    def accept(self, lsock, timeout_s=20, what="a connection"):
        lsock.settimeout(T(timeout_s))
        try:
            c, peer = lsock.accept()
        except socket.timeout:
            fail(f"no {what} within {T(timeout_s):.0f}s")
        c.settimeout(T(timeout_s))
        self.closers.append(c.close)
        return c

    def connect(self, host, port, timeout_s=20, bind=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        self.closers.append(s.close)
        if bind:
            s.bind((bind, 0))
        s.settimeout(T(timeout_s))
        s.connect((host, port))
        return s

    def connect_for_reset(self, host, port, what):
        """Connects a client the far side is expected to reset promptly; the
        reset may even arrive before connect() returns. Returns ("reset" or
        "eof", seconds)."""
        t0 = time.monotonic()
        try:
            c = self.connect(host, port)
        except ConnectionResetError:
            return "reset", time.monotonic() - t0
        return expect_closed(c, 5, what)

    def expect_refused(self, host, port, what=None):
        """Nothing listens on host:port: connect is refused."""
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(T(10))
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return
        except socket.timeout:
            fail(f"connect to {host}:{port} timed out; expected it refused ({what or ''})")
        finally:
            s.close()
        fail(f"connect to {host}:{port} succeeded; expected it refused ({what or ''})")

    def expect_port_closed(self, host, port, what=None, timeout_s=20):
        """The listener on host:port goes away (ri-core logs "closed port"
        just before it closes the socket, so wait for the socket itself),
        then a connect is refused."""
        wait_until(lambda: not is_listening(host, port), timeout_s,
                   f"{host}:{port} to stop listening ({what or ''})")
        self.expect_refused(host, port, what)

    # -- teardown
    def close(self):
        """Stops everything; returns a list of problems found on the way."""
        if self.closed:
            return []
        self.closed = True
        problems = []
        for c in reversed(self.closers):
            try:
                c()
            except Exception as e:
                problems.append(f"cleanup: {e!r}")
        for u in self.upstreams:
            problems += [f"{u.name}: {e}" for e in u.errors[:3]]
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:
                problems.append(f"stopping {p.name}: {e!r}")
        for p in self.procs:
            if p.stop_problem:
                problems.append(p.stop_problem)
            cp = p.crash_problem()
            if cp:
                problems.append(cp)
            if p.kind in ("core", "tool"):
                log = p.log()
                m = SANITIZER_RE.search(log)
                if m:
                    i = max(0, m.start() - 200)
                    problems.append(f"sanitizer report in {p.name}'s log:\n{log[i:i + 4000]}")
                m = REPEATED_RE.search(log)
                if m:
                    problems.append(f"{p.name}'s log says the same thing twice: {m.group(0)!r}")
                for s in self.secrets if p.kind == "core" else ():
                    if s and s in log:
                        problems.append(f"a secret appears in {p.name}'s log")
        return problems

    def report(self, lines=40):
        """Log tails of every process and upstream summaries, for a failure."""
        out = []
        for p in self.procs:
            rc = p.poll()
            out.append(f"---- {p.name} (pid {p.pid}, {'running' if rc is None else f'rc {rc}'})"
                       f" {p.log_path} ----")
            out.append(p.tail(lines) or "(empty log)")
        for u in self.upstreams:
            out.append("---- " + u.summary())
        return "\n".join(out)

    def cleanup_dir(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)
