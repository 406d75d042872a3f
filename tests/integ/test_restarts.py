"""Restarts and upgrades that refuse no client.

An edge keeps its public ports open while it has no tunnel and holds new
clients until one is ready (hold_secs); a hub or an edge started with the
config of a running one (handover_socket) takes its listening sockets over
while the old process drains; a second process on the same port fails
loudly instead of sharing the port's clients."""
import os
import signal
import socket
import threading
import time

from harness import (EdgeSpec, Hub, T, check, echo_check, is_listening, recv_exact, timeout,
                     wait_until)


class Churn:
    """Short connections to addr in a thread until stop(): connect, 32-byte
    echo, close. Counts successes and failures (with their reasons)."""

    def __init__(self, addr, interval=0.005):
        self.addr, self.interval = addr, interval
        self.ok, self.failed = 0, []
        self._stop = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        msg = os.urandom(16).hex().encode()
        while not self._stop.is_set():
            try:
                c = socket.create_connection(self.addr, timeout=T(15))
                c.settimeout(T(15))
                c.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    d = c.recv(len(msg) - len(got))
                    if not d:
                        raise ConnectionError("closed before the echo")
                    got += d
                c.close()
                if got != msg:
                    raise ValueError(f"echo {got!r}")
                self.ok += 1
            except (OSError, ValueError) as e:
                self.failed.append(repr(e))
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self.th.join(T(30))
        return self.ok, self.failed


def _long_stream(env, host, port):
    """An echo stream that stays open: returns the socket (checked once)."""
    c = env.connect(host, port)
    echo_check(c, b"still here " * 8)
    return c


@timeout(90)
def test_edge_holds_clients_while_the_hub_is_down(env):
    """The hub is killed: the edge keeps its port open; a client that comes
    meanwhile is held and served once a new hub is up (on old main the port
    closed and the client was refused)."""
    p = env.port()
    env.upstream(p)
    hub, edge, spec = env.pair([p], edge_opts={"hold_secs": 30})
    hub.signal(signal.SIGKILL)
    edge.wait_log(r"closed: ")
    check(is_listening("127.0.0.2", p), "the edge closed its port when the hub went away")
    c = env.connect("127.0.0.2", p)
    c.sendall(b"waiting for a tunnel")
    edge.wait_log(r"holding new clients until a tunnel to the hub is ready")
    m = edge.mark()
    env.restart_hub(hub, name="hub2")
    edge.wait_log(r"1 held client sent through the new tunnel", since=m)
    c.settimeout(T(20))
    got = b""
    while len(got) < 20:
        d = c.recv(100)
        check(d, "the held client's connection closed")
        got += d
    check(got == b"waiting for a tunnel", f"echo {got!r}")
    echo_check(c)
    c.close()


@timeout(60)
def test_held_clients_are_reset_after_hold_secs(env):
    """With no hub at all, a held client is reset after hold_secs and the
    edge says so; the port stays open for the next one."""
    p = env.port()
    spec = EdgeSpec("edge-h", [p])
    hub = env.hub([spec])
    edge = env.edge(hub, spec, hold_secs=1)
    hub.stop()
    edge.wait_log(r"closed: ")
    c = env.connect("127.0.0.2", p)
    c.settimeout(T(10))
    try:
        d = c.recv(10)
        check(d == b"", f"a held client got {d!r}")
    except ConnectionResetError:
        pass
    edge.wait_log(r"reset 1 client: no tunnel to the hub within hold_secs \(1 s\)")
    check(is_listening("127.0.0.2", p), "the port closed")


@timeout(60)
def test_reconnect_delay_stays_short_during_an_outage(env):
    """While the hub is away the edge retries at most every
    reconnect_max_secs (default 1.5 s, jittered down, never up), so it is
    back within that of the hub's return however long the outage."""
    p = env.port()
    spec = EdgeSpec("edge-b", [p])
    hub = env.hub([spec])
    # the defaults, not the harness's faster ones
    edge = env.edge(hub, spec, reconnect_min_secs=None, reconnect_max_secs=None)
    hub.stop()
    edge.wait_log(r"reconnecting in", count=6, timeout_s=30)
    delays = [float(x) for x in
              __import__("re").findall(r"reconnecting in ([\d.]+) s", edge.log())]
    check(max(delays) <= 1.5, f"reconnect delays {delays}")
    check(delays[-1] >= 1.0, f"the delay did not grow to the cap: {delays}")


def _handover_pair(env, p, **hub_opts):
    env.upstream(p)
    spec = EdgeSpec("edge-u", [p])
    hsock = env.path("hub.handover")
    hub = env.hub([spec], handover=hsock, drain_timeout_secs=30, **hub_opts)
    edge = env.edge(hub, spec, handover=env.path("edge.handover"), hold_secs=15,
                    drain_timeout_secs=30)
    return hub, edge, spec


@timeout(120)
def test_hub_upgrade_refuses_no_client(env):
    """A second hub started with the same config takes the tunnel socket
    over; the old one drains (an open stream finishes on it) and exits;
    the edge opens its new tunnel at once. Clients connecting all along:
    none fails."""
    p = env.port()
    hub, edge, spec = _handover_pair(env, p)
    old_stream = _long_stream(env, "127.0.0.2", p)
    churn = Churn(("127.0.0.2", p))
    wait_until(lambda: churn.ok >= 20, 20, "clients flowing before the upgrade")
    hm, em = hub.mark(), edge.mark()
    hub2 = env.start_core("hub2", hub.cfg_path, cls=Hub)
    hub2.port = hub.port
    hub2.wait_log(r"took the listening socket \S+ over from the running process")
    hub.wait_log(r"handing over to a new hub process", since=hm)
    edge.wait_log(r"the hub is going away .*opening a new tunnel now", since=em)
    edge.wait_log(r"connected to hub", since=em)
    wait_until(lambda: churn.ok >= 60, 30, "clients flowing after the upgrade")
    echo_check(old_stream, b"old tunnel, old hub")  # the old stream lives on
    check(hub.alive(), "the old hub exited with a stream still open")
    old_stream.close()
    hub.wait_exit(20, "the old hub to exit once drained")
    ok, failed = churn.stop()
    check(not failed, f"{len(failed)} of {ok + len(failed)} clients failed: {failed[:3]}")
    # and the new hub takes the next upgrade too
    check(os.path.exists(env.path("hub.handover")), "the new hub does not serve handovers")


@timeout(120)
def test_edge_upgrade_refuses_no_client(env):
    """A second edge started with the same config takes the public
    listeners over at once (holding clients until its tunnel is up); the
    old one finishes its open stream on its own tunnel, which the hub
    keeps beside the new one, and exits. No client fails."""
    p = env.port()
    hub, edge, spec = _handover_pair(env, p)
    old_stream = _long_stream(env, "127.0.0.2", p)
    churn = Churn(("127.0.0.2", p))
    wait_until(lambda: churn.ok >= 20, 20, "clients flowing before the upgrade")
    em, hm = edge.mark(), hub.mark()
    edge2 = env.start_core("edge2", edge.cfg_path)
    edge2.wait_log(r"took 1 listening port over from the running process")
    edge2.wait_log(r"connected to hub")
    edge.wait_log(r"a new edge process took the listeners over: draining", since=em)
    hub.wait_log(r"edge edge-u connected from", since=hm)
    wait_until(lambda: churn.ok >= 60, 30, "clients flowing after the upgrade")
    echo_check(old_stream, b"old edge, old tunnel")
    old_stream.close()
    edge.wait_exit(20, "the old edge to exit once drained")
    ok, failed = churn.stop()
    check(not failed, f"{len(failed)} of {ok + len(failed)} clients failed: {failed[:3]}")
    check(is_listening("127.0.0.2", p), "the port closed")


@timeout(120)
def test_edge_upgrade_keeps_clients_waiting_in_the_queue(env):
    """Clients that wait in the accept queue of the shared listening socket
    when the hand-over completes belong to the new edge: the old one,
    stopping, must close its copy without accepting them (it would reset
    them). The old edge is frozen while they connect and the new one asks
    for the sockets, so both land in its loop at once; in whichever order
    it serves them (the order is not forced: accepting first is legitimate
    and common, so this catches the race only sometimes), every client gets
    through, and the old edge says it handed the port over, not closed it."""
    p = env.port()
    hub, edge, spec = _handover_pair(env, p)
    em = edge.mark()
    edge.signal(signal.SIGSTOP)
    try:
        edge2 = env.start_core("edge2", edge.cfg_path)
        clients = []
        for i in range(20):
            c = env.connect("127.0.0.2", p)
            c.sendall(b"queued %d" % i)
            clients.append(c)
    finally:
        edge.signal(signal.SIGCONT)
    edge2.wait_log(r"took 1 listening port over from the running process")
    edge.wait_log(r"a new edge process took the listeners over: draining", since=em)
    check(edge.count(r"closed port", since=em) == 0, "the old edge says it closed the port")
    edge.wait_log(r"handed port %d over" % p, since=em)
    for i, c in enumerate(clients):
        want = b"queued %d" % i
        check(recv_exact(c, len(want), f"client {i}'s echo") == want, f"client {i}: other bytes")
    check(is_listening("127.0.0.2", p), "the port closed")


@timeout(60)
def test_second_edge_on_the_same_port_fails_loudly(env):
    """Two edge processes with the same bind address and port: the second
    cannot listen ("Address already in use", logged as an error and
    retried) instead of silently taking half the clients."""
    p = env.port()
    env.upstream(p)
    a, b = EdgeSpec("edge-a", [p]), EdgeSpec("edge-b", [p])
    hub = env.hub([a, b])
    env.edge(hub, a)
    eb = env.edge(hub, b, wait_ports=[])
    eb.wait_log(r"cannot listen on 127.0.0.2 port %d: Address already in use" % p)
    eb.wait_log(r"will retry the ports that failed")
