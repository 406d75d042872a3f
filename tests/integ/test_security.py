"""Attacks by peers that know the secret (ri-peer as a rogue edge or hub) or
by anyone who can reach a port: authorization of OPENs, TLS post-handshake
messages, descriptor exhaustion, protocol violations before authentication."""
import re
import signal
import time

from harness import EdgeSpec, T, check, echo_check, wait_until


def _config_line(ports):
    return r"< CONFIG stream=0 len=\d+ ports=%s\n" % ",".join(str(p) for p in sorted(ports))


def test_open_for_unassigned_port_is_refused(env):
    pa, pb, pc, px = env.ports(4)
    ua, uc, ux = env.upstream(pa), env.upstream(pc), env.upstream(px)
    a, b = EdgeSpec("edge-a", [pa, pb]), EdgeSpec("edge-b", [pc])
    hub = env.hub([a, b])
    peer = env.peer("edge", f"127.0.0.1:{hub.port}", a.id, a.secret)
    peer.wait_log(_config_line([pa, pb]))
    m = peer.send(f"open 1 {pa} ; data 1 hello")
    peer.wait_log(r"< DATA stream=1 len=5 data=hello", since=m)
    m = peer.send(f"open 3 {px}")  # nobody's port
    peer.wait_log(r"< RST stream=3 len=\d+ code=9 ", since=m)
    m = peer.send(f"open 5 {pc}")  # another edge's port
    peer.wait_log(r"< RST stream=5 len=\d+ code=9 ", since=m)
    hub.wait_log(r"edge edge-a: stream 3: refused: port %d is not assigned to this edge" % px)
    hub.wait_log(r"edge edge-a: stream 5: refused: port %d is not assigned" % pc)
    # the stream on an assigned port is untouched by the refusals
    m = peer.send("data 1 still-here")
    peer.wait_log(r"< DATA stream=1 len=\d+ data=still-here", since=m)
    # a tunnel that keeps trying is closed, and its log lines are limited
    hm = hub.mark()
    peer.send(" ; ".join(f"open {7 + 2 * i} {px}" for i in range(80)))
    peer.wait_log(r"< GOAWAY stream=0 len=\d+ last=\d+ code=1 reason=too many OPENs")
    peer.wait_log(r"CLOSED ")
    lines = hub.count(r"is not assigned to this edge", since=hm)
    check(lines <= 6, f"{lines} log lines for 80 refused OPENs within a second (limit 5 + 1)")
    check(not ux.conns, f"the unassigned port's upstream got {len(ux.conns)} connection(s)")
    check(not uc.conns, f"the other edge's upstream got {len(uc.conns)} connection(s)")
    check(len(ua.conns) == 1, f"the assigned port's upstream got {len(ua.conns)} connections")


def test_open_for_port_removed_at_runtime_is_refused(env):
    p1, p2 = env.ports(2)
    u1, u2 = env.upstream(p1), env.upstream(p2)
    a = EdgeSpec("edge-a", [p1, p2])
    hub = env.hub([a])
    peer = env.peer("edge", f"127.0.0.1:{hub.port}", a.id, a.secret)
    peer.wait_log(_config_line([p1, p2]))
    m = peer.send(f"open 1 {p2} ; data 1 before")
    peer.wait_log(r"< DATA stream=1 len=\d+ data=before", since=m)
    m = peer.mark()
    env.rewrite_hub(hub, [EdgeSpec(a.id, [p1], secret=a.secret)])
    env.reload(hub)
    peer.wait_log(_config_line([p1]), since=m)
    m = peer.send(f"open 3 {p2} ; open 5 {p1} ; data 5 kept")
    peer.wait_log(r"< RST stream=3 len=\d+ code=9 ", since=m)
    peer.wait_log(r"< DATA stream=5 len=\d+ data=kept", since=m)
    check(len(u2.conns) == 1, f"removed port's upstream got {len(u2.conns)} connections")
    check(len(u1.conns) == 1, f"kept port's upstream got {len(u1.conns)} connections")


def test_keyupdate_then_ping_in_one_segment(env):
    """A TLS 1.3 KeyUpdate and a PING in one TCP segment: GnuTLS reports
    AGAIN after the KeyUpdate while the PING's record is still buffered."""
    p = env.port()
    env.upstream(p)
    a = EdgeSpec("edge-a", [p])
    hub = env.hub([a], ping_interval_secs=30, ping_timeout_secs=60)
    peer = env.peer("edge", f"127.0.0.1:{hub.port}", a.id, a.secret)
    # our direction only, then ours asking the hub to update its keys too
    for cmd in ("keyupdate1 ; ping", "keyupdate ; ping", "keyupdate ; keyupdate1 ; ping"):
        m = peer.send(cmd)
        peer.wait_log(r"< PONG stream=0", since=m, timeout_s=5)
    # data in both directions under the new keys
    m = peer.send(f"open 1 {p} ; data 1 after-the-rekey")
    peer.wait_log(r"< DATA stream=1 len=\d+ data=after-the-rekey", since=m, timeout_s=5)


def test_edge_survives_tickets_and_keyupdate_from_hub(env):
    """A hub (here ri-peer) that sends TLS session tickets with its first
    AUTH message, then KeyUpdates: the edge still authenticates at once."""
    hp, p = env.ports(2)
    spec = EdgeSpec("edge-t", [p])
    hub = env.peer("hub", f"127.0.0.1:{hp}", spec.id, spec.secret, "--tickets", "2",
                   "--config", str(p))
    edge = env.edge(hp, spec, wait=False)
    hub.wait_log(r"TICKETS 2 sent")
    hub.wait_log(r"(?m)^READY$", timeout_s=5)
    edge.wait_log(r"edge edge-t: connected to hub", timeout_s=5)
    edge.wait_log(r"listening on 127\.0\.0\.2 port %d\b" % p, timeout_s=5)
    for cmd in ("keyupdate ; ping", "keyupdate1 ; ping"):
        m = hub.send(cmd)
        hub.wait_log(r"< PONG stream=0", since=m, timeout_s=5)
    c = env.connect("127.0.0.2", p)
    hub.wait_log(r"< OPEN stream=1 ")
    c.sendall(b"through-the-rekeyed-tunnel")
    hub.wait_log(r"< DATA stream=1 len=\d+ data=through-the-rekeyed-tunnel")


def _cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    import os
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_hub_out_of_descriptors_pauses_quietly(env):
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-a", [p])
    hub_port = env.port()
    cfg = env.write("hub.cfg", env.hub_config(hub_port, [spec], handshake_timeout_secs=60))
    from harness import Hub
    hub = env.start_core("hub", cfg, cls=Hub, wrap=["prlimit", "--nofile=24"])
    hub.port = hub_port
    hub.wait_log(r"hub: listening on \S+:%d " % hub_port)
    clients = [env.connect("127.0.0.1", hub_port) for _ in range(40)]
    hub.wait_log(r"hub: accept: Too many open files: pausing new connections for 1 s")
    m, c0, t0 = hub.mark(), _cpu_secs(hub.pid), time.monotonic()
    hub.wait_log(r"accept: Too many open files", since=m, count=2, timeout_s=10)
    # a later window of a few seconds, measured on the hub's own clock
    m, c0, t0 = hub.mark(), _cpu_secs(hub.pid), time.monotonic()
    hub.wait_log(r"accept: Too many open files", since=m, count=3, timeout_s=15)
    cpu, wall = _cpu_secs(hub.pid) - c0, time.monotonic() - t0
    lines = hub.count(r"accept: ", since=m)
    check(cpu < 0.3 * wall, f"the hub used {cpu:.2f} s of CPU in {wall:.2f} s while out of "
                            f"descriptors (spinning)")
    check(lines <= wall + 2, f"{lines} accept log lines in {wall:.1f} s (about one per second "
                             f"expected)")
    for c in clients:
        c.close()
    # descriptors free up: a real edge gets in
    edge = env.edge(hub, spec)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"served again")


def test_edge_out_of_descriptors_pauses_quietly(env):
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-a", [p])
    hub = env.hub([spec])
    cfg = env.write("edge.cfg", env.edge_config(hub.port, spec.id, spec.secret))
    from harness import Edge
    edge = env.start_core("edge", cfg, cls=Edge, wrap=["prlimit", "--nofile=24"])
    edge.bind = "127.0.0.2"
    env.wait_edge_ready(edge, [p])
    clients = []
    for _ in range(40):
        clients.append(env.connect("127.0.0.2", p))
    edge.wait_log(r"accept on port %d: Too many open files" % p)
    m, c0, t0 = edge.mark(), _cpu_secs(edge.pid), time.monotonic()
    edge.wait_log(r"accept on port %d: Too many open files" % p, since=m, count=3,
                  timeout_s=15)
    cpu, wall = _cpu_secs(edge.pid) - c0, time.monotonic() - t0
    lines = edge.count(r"accept on port", since=m)
    check(cpu < 0.3 * wall, f"the edge used {cpu:.2f} s of CPU in {wall:.2f} s (spinning)")
    check(lines <= wall + 2, f"{lines} accept log lines in {wall:.1f} s")
    for c in clients:
        c.close()
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"served again")


def _hello_hex(edge_id, auth="auth_secret", msg=b"\x00" * 32):
    b = b"RITN" + (1).to_bytes(2, "big") + bytes([len(edge_id)]) + edge_id.encode()
    b += bytes([len(auth)]) + auth.encode() + len(msg).to_bytes(2, "big") + msg
    return b.hex()


def test_protocol_violations_before_auth_get_refuse_code_1(env):
    a = EdgeSpec("edge-a", [env.port()])
    hub = env.hub([a])
    addr = f"127.0.0.1:{hub.port}"
    cases = {
        "DATA": "frame 0x11 1 616263",
        "OPEN": "frame 0x10 1 " + "00" * 37,
        "ACK": "frame 0x09 0 00000010",
        "GOAWAY": "frame 0x08 0 000000000006",
        "WELCOME": "frame 0x03 0 0001",
        "CONFIG": "frame 0x05 0 0000000000",
        "AUTH": "frame 0x02 0 " + "00" * 32,
        "oversized": "frame 0x06 0 " + "00" * 9000,
        "second HELLO": f"frame 0x01 0 {_hello_hex(a.id)} ; frame 0x01 0 {_hello_hex(a.id)}",
    }
    for what, cmd in cases.items():
        peer = env.peer("edge", addr, a.id, a.secret, "--raw", name=f"peer-{what}")
        peer.send(cmd)
        peer.wait_log(r"< REFUSE stream=0 len=\d+ code=1 ", timeout_s=5)
        peer.wait_log(r"CLOSED ", timeout_s=5)
    # the hub keeps serving
    peer = env.peer("edge", addr, a.id, a.secret)
    m = peer.send("ping")
    peer.wait_log(r"< PONG", since=m)


def test_repeated_auth_failures_back_off_per_address(env):
    """An address that keeps failing to authenticate is refused at accept
    for a growing while; other addresses are not affected."""
    p = env.port()
    env.upstream(p)
    a = EdgeSpec("edge-a", [p])
    hub = env.hub([a])
    addr = f"127.0.0.1:{hub.port}"
    failures = 0
    for i in range(12):
        # alternate a wrong secret and an unknown id: both count
        who = (a.id, "wrong-secret-0123456789") if i % 2 == 0 else ("no-such-edge",
                                                                    "0123456789abcdef")
        pe = env.peer("edge", addr, *who, "--bind", "127.0.0.5", wait=False, name=f"bad-{i}")
        pe.wait_log(r"CLOSED ", allow_exit=True)
        if re.search(r"< REFUSE stream=0 len=\d+ code=[34] ", pe.log()):
            failures += 1
            continue
        # not even a TLS handshake: refused at accept
        check(failures > 3, f"refused at accept after only {failures} failures")
        break
    else:
        check(False, f"12 attempts, {failures} failures, never refused at accept")
    hub.wait_log(r"hub: 127\.0\.0\.5:\d+ keeps failing to authenticate: refusing its "
                 r"connections for \d+ s")
    hub.wait_log(r"hub: refusing 127\.0\.0\.5:\d+ for \d+ s more: repeated authentication")
    # the real edge, from another address, is let in at once
    env.edge(hub, a)
    echo_check(env.connect("127.0.0.2", p), b"unaffected")
