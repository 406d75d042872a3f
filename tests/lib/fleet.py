"""fleet.py -- the scale scenarios of issue 10 section 4, shared by the suite
(tests/integ/test_scale.py, reduced size) and the benchmark
(tests/bench/scale.py, full size):

  many_edges()     N simulated edges (build/ri-edgesim: the real tunnel code,
                   one event loop) on one hub: all connect and carry a
                   stream; the hub's memory per idle edge; kill -9 of the
                   hub, a restart, and how long until every edge carries
                   traffic again.
and the helpers both use for one real ri-core edge filled with streams up
to its open-file limit.
"""
import hashlib
import hmac
import json
import os
import signal
import socket
import time

from harness import EdgeSpec, Edge, Hub, Proc, T, check, fail, rss_mib, wait_until

NEAR_LIMIT = r"edge: near the descriptor limit: (\d+) of (\d+) descriptors in use"
REFUSING = r"edge: refusing new clients with a reset"


def sim_secret(seed, edge_id):
    """The secret ri-edgesim derives for edge_id: hex(HMAC-SHA-256(seed, id))."""
    return hmac.new(seed.encode(), edge_id.encode(), hashlib.sha256).hexdigest()


def sim_edges(n, seed, port, prefix="sim-"):
    """The hub's view of ri-edgesim's n edges, all assigned `port` (the echo
    target's: the hub connects to target_host:<edge port>)."""
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    return [EdgeSpec(i, [port], secret=sim_secret(seed, i)) for i in ids]


class Sim(Proc):
    """ri-edgesim; its stdout (JSON lines) is its log."""

    def events(self, kind):
        out = []
        for line in self.log().splitlines():
            if line.startswith("{") and f'"event": "{kind}"' in line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_event(self, kind, count, timeout_s):
        def got():
            if not self.alive() and len(self.events(kind)) < count:
                fail(f"{self.name} exited ({self.poll()}) before {count} '{kind}':\n"
                     f"{self.tail(15)}")
            return len(self.events(kind)) >= count
        last = self.events("status")
        try:
            wait_until(got, timeout_s, f"{self.name}: {count} '{kind}' events")
        except AssertionError:
            last = self.events("status")
            raise AssertionError(f"{self.name}: no {count} '{kind}' within {T(timeout_s):.0f}s; "
                                 f"last status {last[-1] if last else None}")
        return self.events(kind)[count - 1]


def start_sim(env, hub, n, seed, port, rounds=0, name="edgesim", args=()):
    """ri-edgesim with n edges; its clients reach the edges on 127.0.0.3:port
    (the port every edge is assigned: OPEN names the address a client
    reached, and the hub checks it)."""
    exe = os.path.join(env.build, "ri-edgesim")
    check(os.access(exe, os.X_OK), f"{exe} not built (make builds it with the tests)")
    return Sim(env, name, [exe, "--hub", f"127.0.0.1:{hub.port}", "--edges", str(n),
                           "--seed", seed, "--plugin",
                           os.path.join(env.plugin_dir, "auth_secret.so"),
                           "--listen", f"127.0.0.3:{port}", "--rounds", str(rounds), *args],
               kind="tool")


def rss_kib(pid):
    return rss_mib(pid) * 1024.0


def many_edges(env, n, connect_timeout_s, restart_timeout_s, hub_wrap=(), hub_opts=None,
               say=lambda m: None):
    """N simulated edges on one hub, then kill -9 and a restart of the hub.
    Returns the figures as a dict (times in seconds)."""
    p = env.port()  # free on 127.0.0.1 (the echo target) and 127.0.0.3 (ri-edgesim)
    env.upstream(p)  # echo, skipping the PROXY line
    seed = os.urandom(8).hex()
    edges = sim_edges(n, seed, p)
    opts = dict(log_level="warn")
    opts.update(hub_opts or {})
    hub_port = env.port()
    cfg = env.write("hub.cfg", env.hub_config(hub_port, edges, **opts))

    def start_hub(name):
        h = env.start_core(name, cfg, cls=Hub, wrap=hub_wrap)
        h.port, h.cfg_path, h.edges, h.opts = hub_port, cfg, edges, opts
        wait_until(lambda: _listening(hub_port) or not h.alive(), 30, f"{name} to listen")
        check(h.alive(), f"{name} exited:\n{h.tail(20)}")
        return h

    hub = start_hub("hub")
    time.sleep(0.2)
    rss0 = rss_kib(hub.pid)
    say(f"hub up with {n} edges configured, RSS {rss0 / 1024:.1f} MiB; starting {n} "
        f"simulated edges")
    t_start = time.monotonic()
    sim = start_sim(env, hub, n, seed, p, rounds=2)
    r0 = sim.wait_event("all_up", 1, connect_timeout_s)
    check(r0["connected"] == n and r0["went_down"] == n,
          f"first round: {r0['connected']} of {n} connected")
    # idle: the streams have closed (the hub's upstream sockets with them)
    wait_until(lambda: _hub_streams(env, hub) == 0, 20, "the hub's streams to close")
    time.sleep(0.5)
    rss1 = rss_kib(hub.pid)
    say(f"all {n} connected and echoed in {r0['all_up_s']:.2f} s; hub RSS "
        f"{rss1 / 1024:.1f} MiB")
    t_kill = time.monotonic()
    hub.signal(signal.SIGKILL)
    hub.wait_exit(10, "SIGKILL")
    t_restart = time.monotonic()
    hub2 = start_hub("hub-again")
    r1 = sim.wait_event("all_up", 2, restart_timeout_s)
    check(r1["connected"] == n, f"after the restart: {r1['connected']} of {n} connected")
    check(r1["went_down"] == n, f"after the restart: only {r1['went_down']} of {n} edges "
                                f"noticed the hub's death")
    rc = sim.wait_exit(20, "after its two rounds")
    summary = sim.events("summary")
    check(rc == 0 and summary, f"ri-edgesim ended with {rc}:\n{sim.tail(10)}")
    s = summary[-1]
    return {
        "edges": n,
        "connect_all_s": r0["all_up_s"],
        "connect_s": r0["ready_s"],
        "connect_traffic_s": r0["traffic_s"],
        "hub_rss_before_mib": round(rss0 / 1024, 1),
        "hub_rss_idle_mib": round(rss1 / 1024, 1),
        "hub_rss_per_idle_edge_kib": round((rss1 - rss0) / n, 1),
        "restart_all_back_s": round(r1["last_traffic_mono"] - t_restart, 3),
        "restart_all_back_since_kill_s": round(r1["last_traffic_mono"] - t_kill, 3),
        "restart_ready_s": r1["ready_s"],
        "restart_traffic_s": r1["traffic_s"],
        "connect_attempts": s["connect_attempts"],
        "handshakes": s["handshakes"],
        "streams_ok": s["streams_ok"],
        "streams_failed": s["streams_failed"],
        "sim_cpu_s": s["cpu_s"],
        "sim_rss_mib": round(s["max_rss_kib"] / 1024, 1),
        "wall_s": round(time.monotonic() - t_start, 1),
        "hub": hub2,
    }


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _hub_streams(env, hub):
    """Open streams of the hub: its TCP sockets to the upstream side are
    gone when the streams are; read from /proc (no control socket needed)."""
    n = 0
    for fd in os.listdir(f"/proc/{hub.pid}/fd"):
        try:
            if os.readlink(f"/proc/{hub.pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    # the listener and one tunnel per edge are sockets too
    return max(0, n - 1 - len(hub.edges))


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def try_client(env, host, port, payload):
    """A client that is either served (echo, socket returned) or refused
    (reset, or closed without data: None)."""
    try:
        c = env.connect(host, port, timeout_s=10)
        c.sendall(payload)
        got = b""
        while len(got) < len(payload):
            b = c.recv(len(payload) - len(got))
            if not b:
                c.close()
                return None
            got += b
    except (ConnectionResetError, BrokenPipeError):
        return None
    check(got == payload, f"echo differs: {got[:40]!r}")
    return c


def edge_under_nofile(env, hub_port, spec, nofile, bind="127.0.0.2"):
    """A real edge for `spec` under an open-file limit of `nofile` (soft and
    hard: ri-core cannot raise it), connected and listening."""
    cfg = env.write("edge.cfg", env.edge_config(hub_port, spec.id, spec.secret, bind=bind))
    edge = env.start_core("edge", cfg, cls=Edge, wrap=["prlimit", f"--nofile={nofile}"])
    edge.bind = bind
    env.wait_edge_ready(edge, spec.ports)
    return edge


def fill_until_refused(env, host, port, at_most):
    """Clients, one echo each, until one is refused (or at_most are held):
    returns the held sockets and whether a refusal came."""
    held = []
    for i in range(at_most):
        c = try_client(env, host, port, b"stream %d\n" % i)
        if c is None:
            return held, True
        held.append(c)
    return held, False


def served_again(env, host, port, timeout_s=20):
    """Waits until a new client is served (echo) again."""
    def ok():
        c = try_client(env, host, port, b"again\n")
        if c is None:
            return False
        c.close()
        return True
    wait_until(ok, timeout_s, f"a client on {host}:{port} to be served again")
