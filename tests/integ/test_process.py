"""The daemon's own process: the open-file limit raised to the hard limit at
start (with a warning when it cannot hold max_streams), and `user = "..."`
dropping root while keeping CAP_NET_BIND_SERVICE for ports below 1024."""
import os
import pwd
import socket

from harness import EdgeSpec, check, echo_check, fail

CAP_NET_BIND_SERVICE = 10


def _status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            out[k] = v.split()
    return out


def _soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for ln in f:
            if ln.startswith("Max open files"):
                return int(ln.split()[3])
    fail("no 'Max open files' in /proc/PID/limits")


def test_open_file_limit_raised_to_hard(env):
    """Started with 1024 soft / 4096 hard (systemd's default soft limit), the
    hub raises its soft limit to 4096 and warns that 4096 cannot hold
    max_streams = 20000."""
    spec = EdgeSpec("edge-1", [env.port()])
    port = env.port()
    cfg = env.write("hub.cfg", env.hub_config(port, [spec], max_streams=20000))
    hub = env.start_core("hub", cfg, wrap=["prlimit", "--nofile=1024:4096"])
    hub.wait_log(r"open-file limit raised from 1024 to 4096")
    hub.wait_log(r"warn .*open-file limit \(4096\) cannot cover max_streams")
    check(_soft_nofile(hub.pid) == 4096, f"soft limit {_soft_nofile(hub.pid)}, want 4096")
    # enough for max_streams: no warning
    cfg2 = env.write("hub2.cfg", env.hub_config(env.port(), [spec], max_streams=1000))
    hub2 = env.start_core("hub2", cfg2, wrap=["prlimit", "--nofile=1024:4096"])
    hub2.wait_log(r"hub: listening on")
    check(hub2.count(r"cannot cover") == 0, "warned although 4096 covers max_streams = 1000")


def _free_low_port(host):
    for p in range(990, 700, -1):
        s = socket.socket()
        try:
            s.bind((host, p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    fail("no free port below 1024")


def test_user_drops_root_keeps_low_ports(env):
    """user = "nobody": hub and edge run as nobody after start, no capability
    but CAP_NET_BIND_SERVICE; the edge still opens a port below 1024 that
    the hub assigns after the drop; -t refuses an unknown user."""
    if os.geteuid() != 0:
        fail("needs root (the test suite runs as root, like CI)")
    nobody = pwd.getpwnam("nobody")
    low = _free_low_port("127.0.0.2")
    env.upstream(low)
    spec = EdgeSpec("edge-1", [low])
    hub = env.hub([spec], top={"user": "nobody"})
    edge = env.edge(hub, spec, top={"user": "nobody"})
    for proc in (hub, edge):
        st = _status(proc.pid)
        check(int(st["Uid"][1]) == nobody.pw_uid and int(st["Uid"][2]) == nobody.pw_uid,
              f"{proc.name}: Uid {st['Uid']}, want {nobody.pw_uid}")
        check(int(st["Gid"][1]) == nobody.pw_gid, f"{proc.name}: Gid {st['Gid']}")
        eff = int(st["CapEff"][0], 16)
        check(eff == 1 << CAP_NET_BIND_SERVICE,
              f"{proc.name}: CapEff {eff:#x}, want only CAP_NET_BIND_SERVICE")
        proc.wait_log(r"running as user nobody")
    c = env.connect("127.0.0.2", low)
    echo_check(c)
    bad = env.write("bad.cfg", env.hub_config(env.port(), [spec],
                                             top={"user": "no-such-user-ri"}))
    r = env.run_core(["-t", "-c", bad])
    check(r.returncode == 1 and "no-such-user-ri" in r.stderr and "no such user" in r.stderr,
          f"-t with an unknown user: rc {r.returncode}: {r.stderr!r}")
