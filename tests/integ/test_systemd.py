"""systemd: ri-core speaks sd_notify(3) itself (no libsystemd) when
$NOTIFY_SOCKET is set -- READY=1 only once the hub's tunnel port or the
edge's public ports listen, RELOADING=1 then READY=1 around a SIGHUP,
STOPPING=1 at SIGTERM -- and the unit files in conf/ pass
`systemd-analyze verify`."""
import os
import re
import shutil
import signal
import socket
import subprocess

from harness import ROOT, EdgeSpec, T, check, is_listening


class Notify:
    """$NOTIFY_SOCKET: a datagram socket at a path (or, abstract, "@name")."""

    def __init__(self, env, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"ri-test-notify-{os.getpid()}-{os.urandom(4).hex()}"
            self.sock.bind("\0" + name)
            self.addr = "@" + name
        else:
            self.addr = env.path("notify.sock")
            self.sock.bind(self.addr)
        env.closers.append(self.sock.close)

    def next(self, timeout_s=20):
        self.sock.settimeout(T(timeout_s))
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            check(False, f"no sd_notify message within {timeout_s} s")


def _reload_and_stop(env, proc, n):
    proc.signal(signal.SIGHUP)
    msg = n.next()
    check(re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", msg), f"after SIGHUP: {msg!r}")
    check(n.next() == "READY=1", "no READY=1 after the reload")
    check(re.search(r"reloaded ", proc.log()), "READY=1 before the reload's outcome")
    proc.signal(signal.SIGTERM)
    check(n.next() == "STOPPING=1", "no STOPPING=1 at SIGTERM")
    proc.wait_exit(20)


def test_sd_notify_hub(env):
    """The hub says READY=1 when its tunnel port accepts connections."""
    n = Notify(env)
    hub = env.hub([EdgeSpec("edge-1", [])], wait=False, extra_env={"NOTIFY_SOCKET": n.addr})
    msg = n.next()
    check(msg == "READY=1", f"first message {msg!r}")
    check(is_listening("127.0.0.1", hub.port), "READY=1 before the tunnel port listens")
    _reload_and_stop(env, hub, n)


def test_sd_notify_edge(env):
    """The edge says READY=1 only once it listens on the ports the hub
    assigned (it is started before its hub, so that takes a while); with an
    abstract-namespace $NOTIFY_SOCKET."""
    p = env.port()
    spec = EdgeSpec("edge-1", [p])
    hub_port = env.port()
    n = Notify(env, abstract=True)
    cfg = env.write("edge.cfg", env.edge_config(hub_port, spec.id, spec.secret))
    edge = env.start_core("edge", cfg, extra_env={"NOTIFY_SOCKET": n.addr})
    edge.wait_log(r"cannot reach hub")  # no READY=1 while there is no hub
    env.hub([spec], port=hub_port)
    msg = n.next()
    check(msg == "READY=1", f"first message {msg!r}")
    check(is_listening("127.0.0.2", p), "READY=1 before the assigned port listens")
    _reload_and_stop(env, edge, n)


def test_systemd_units_verify(env):
    """conf/ri-hub.service and conf/ri-edge.service are valid units
    (systemd-analyze verify, with ExecStart pointed at this build)."""
    exe = shutil.which("systemd-analyze")
    check(exe, "systemd-analyze not installed (Debian package systemd; make test-deps)")
    core = os.path.abspath(env.core)
    for u in ("ri-hub.service", "ri-edge.service"):
        text = open(os.path.join(ROOT, "conf", u)).read()
        for key in ("Type=notify", "User=ri", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                    "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                    "LimitNOFILE=65536", "ProtectSystem=strict", "ProtectHome=yes",
                    "PrivateTmp=yes", "NoNewPrivileges=yes", "StateDirectory=ri",
                    "RuntimeDirectory=ri"):
            check(re.search(r"^%s$" % re.escape(key), text, re.M), f"{u} lacks {key}")
        path = env.write(u, text.replace("/usr/local/bin/ri-core", core), mode=0o644)
        r = subprocess.run([exe, "verify", path], capture_output=True, text=True,
                           timeout=T(60), cwd=env.dir)
        env.debug(f"systemd-analyze verify {u} -> rc {r.returncode}\n{r.stdout}{r.stderr}")
        # only what concerns our unit (the host's own units may have issues)
        ours = [l for l in (r.stdout + r.stderr).splitlines() if u in l]
        check(r.returncode == 0 and not ours, f"systemd-analyze verify {u}:\n{r.stdout}{r.stderr}")
