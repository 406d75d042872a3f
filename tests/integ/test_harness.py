"""The harness checks itself: what Env.close() must catch, and that it
leaves no process behind. (A harness that cannot fail proves nothing.)"""
import os
import socket

import harness
from harness import check, fail, wait_until


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie not yet reaped by its parent counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_close_reports_sanitizer_crash_and_secret(env):
    sub = harness.Env(env.build, "selftest", env.verbose)
    try:
        sub.secrets.add("very-secret-value-123")
        harness.Proc(sub, "asan", ["sh", "-c", "echo '==1==ERROR: AddressSanitizer: "
                                   "heap-use-after-free' >&2; exec sleep 60"], kind="core")
        harness.Proc(sub, "ubsan", ["sh", "-c", "echo 'x.c:1:2: runtime error: signed "
                                    "integer overflow'; exec sleep 60"], kind="core")
        harness.Proc(sub, "leaky", ["sh", "-c", "echo 'key very-secret-value-123'; exec sleep 60"],
                     kind="core")
        seg = harness.Proc(sub, "segv", ["sh", "-c", "kill -SEGV $$"], kind="core")
        seg.wait_exit(10)
        for p in sub.procs[:3]:
            p.wait_log(r".", 10)
        problems = "\n".join(sub.close())
    finally:
        sub.close()
        sub.cleanup_dir()
    for words in ("sanitizer report in asan", "sanitizer report in ubsan",
                  "a secret appears in leaky", "segv died of signal SIGSEGV"):
        check(words in problems, f"Env.close() did not report {words!r}:\n{problems}")


def test_close_kills_process_groups(env):
    sub = harness.Env(env.build, "selftest", env.verbose)
    try:
        pidfile = sub.path("grandchild.pid")
        p = harness.Proc(sub, "tree", ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"])
        stubborn = harness.Proc(sub, "stubborn", ["sh", "-c", "trap '' TERM; echo ready; "
                                "while :; do sleep 1; done"], kind="core")
        stubborn.wait_log(r"ready", 10)
        wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10,
                   "the grandchild's pid")
        grandchild = int(open(pidfile).read())
        stubborn.stop(grace_s=0.3)
        check(stubborn.stop_problem and "killed" in stubborn.stop_problem,
              f"a ri-core ignoring SIGTERM is not reported: {stubborn.stop_problem!r}")
        sub.close()
        for pid in (p.pid, grandchild, stubborn.pid):
            wait_until(lambda: _gone(pid), 10, f"pid {pid} to be gone after Env.close()")
    finally:
        sub.close()
        sub.cleanup_dir()


def test_free_ports_are_free(env):
    ports = env.ports(20)
    check(len(set(ports)) == 20, "free_port handed out a port twice")
    lo, hi = harness._ephemeral_range()
    for p in ports:
        check(not lo <= p <= hi, f"port {p} is in the ephemeral range {lo}-{hi}")
        for host in ("127.0.0.1", "127.0.0.2", "::1"):
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(fam)
            try:
                s.bind((host, p))
            except OSError as e:
                fail(f"port {p} not bindable on {host}: {e}")
            finally:
                s.close()


def test_upstream_records_proxy_lines(env):
    """The upstream helper parses exactly what a PROXY sender writes."""
    p = env.port()
    up = env.upstream(p)
    s = env.connect("127.0.0.1", p)
    s.sendall(b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nhello")
    check(harness.recv_exact(s, 5) == b"hello", "echo")
    s.shutdown(socket.SHUT_WR)
    check(harness.recv_until_eof(s) == b"", "EOF")
    up.wait(lambda: up.conns and up.conns[0].closed, 10, "close")
    c = up.conns[0]
    check(c.proxy_line == b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n", f"{c.proxy_line!r}")
    check(c.nbytes == 5 and bytes(c.head) == b"hello" and c.eof, "payload accounting")
