"""STUN public-address discovery: the edge asks STUN servers (RFC 5389
Binding) for its public address, tells the hub (ADDR frame), and the hub puts
it in the PROXY header as the destination when the address the client
reached the edge on is private. Against a real STUN server (coturn's
turnserver --stun-only on loopback) and a small Python responder for the
answers a real server would not give: none, malformed ones, MAPPED-ADDRESS
only. Whatever STUN does, the tunnel keeps serving."""
import json
import os
import shutil
import socket
import struct
import threading

from harness import EdgeSpec, Proc, check, echo_check, wait_until
from promhttp import admin_plugin, http_get, promtool, samples, wait_http

COOKIE = 0x2112A442


def _udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def _attr(t, v):
    return struct.pack(">HH", t, len(v)) + v + b"\0" * (-len(v) % 4)


def _msg(t, txid, attrs=b"", cookie=COOKIE):
    return struct.pack(">HHI", t, len(attrs), cookie) + txid + attrs


def mapped(ip, port):
    return _attr(0x0001, b"\0\x01" + struct.pack(">H", port) + socket.inet_aton(ip))


def xor_mapped(ip, port):
    a = bytes(x ^ y for x, y in zip(socket.inet_aton(ip), struct.pack(">I", COOKIE)))
    return _attr(0x0020, b"\0\x01" + struct.pack(">H", port ^ (COOKIE >> 16)) + a)


class Responder:
    """A STUN server in a thread on a free loopback UDP port. `answer(txid)`
    returns the datagrams to send back to a request (none: silence); it can
    be swapped at any time. Every request is kept (bytes)."""

    def __init__(self, env, answer=lambda txid: []):
        self.sock = _udp_socket()
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.answer = answer
        self.requests = []
        self.stop = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        env.closers.append(self.close)

    def _run(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.requests.append(data)
            txid = data[8:20] if len(data) >= 20 else bytes(12)
            for d in self.answer(txid):
                self.sock.sendto(d, peer)

    def txids(self):
        with self.lock:
            return [r[8:20] for r in self.requests]

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def _turnserver(env):
    """coturn's STUN-only server on a free loopback port; returns "ip:port"."""
    exe = shutil.which("turnserver")
    check(exe, "turnserver not installed (Debian package coturn; make test-deps installs it)")
    for _ in range(5):
        port = env.port(hosts=("127.0.0.1",))
        try:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", port))
            probe.close()
        except OSError:
            continue
        env.spawn("turnserver", [exe, "--stun-only", "-n", "--listening-ip", "127.0.0.1",
                                 "--listening-port", str(port), "--no-cli", "--no-tls",
                                 "--no-dtls", "--no-rfc5780", "--log-file", "stdout",
                                 "--simple-log", "-m", "1", "--pidfile",
                                 env.path("turnserver.pid"), "--db", env.path("turndb")])
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(0.2)
        txid = os.urandom(12)

        def answers():
            try:
                c.sendto(_msg(1, txid), ("127.0.0.1", port))
                return c.recv(2048)[8:20] == txid
            except OSError:
                return False

        wait_until(answers, 20, f"turnserver answering on 127.0.0.1:{port}", interval=0.1)
        c.close()
        return f"127.0.0.1:{port}"
    check(False, "no free UDP port for turnserver")


def _ctl_json(env, sock, cmd):
    r = env.run_core(["ctl", "-s", sock, "--json", cmd])
    check(r.returncode == 0, f"ctl {cmd}: {r.returncode} {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def _proxy_dest(env, up, port, n):
    """Connects a client to the edge's port, echoes, returns the PROXY line
    the upstream got (the n-th connection) and the client's port."""
    c = env.connect("127.0.0.2", port)
    cport = c.getsockname()[1]
    echo_check(c)
    c.close()
    up.wait_conns(n)
    return up.conns[n - 1].proxy_line, cport


def test_stun_real_server_sets_proxy_destination(env):
    """A STUN server that never answers is asked twice, then the next one
    (coturn) answers with XOR-MAPPED-ADDRESS: the edge's address as seen on
    loopback, 127.0.0.1. The edge logs it, tells the hub, the hub logs it,
    and since 127.0.0.2 -- where the client reached the edge -- is private,
    the PROXY line names 127.0.0.1 as the destination, with the edge's port.
    The counts follow: three requests, a timeout and an ok result; the
    address shows in both roles' status and metrics (control socket,
    `ctl metrics`, and admin_http's /metrics as info metrics)."""
    turn = _turnserver(env)
    dead = _udp_socket()  # bound, never read: no answer, no ICMP
    env.closers.append(dead.close)
    dead_addr = f"127.0.0.1:{dead.getsockname()[1]}"
    p = env.port()
    hp, ep = env.ports(2, hosts=("127.0.0.1",))
    hsock, esock = env.path("hub.sock"), env.path("edge.sock")
    up = env.upstream(p)
    spec = EdgeSpec("edge-1", [p])
    hub = env.hub([spec], control_socket=hsock,
                  plugins=['{ name = "auth_secret"; }', '{ name = "header_proxy_v1"; }',
                           admin_plugin(hp)])
    # a subscriber before the edge comes: publicIpDiscovered carries the address
    sub = Proc(env, "subscribe", [env.core, "ctl", "-s", hsock, "--json", "subscribe"],
               kind="core")
    sub.wait_log(r'(?m)^\{"ok":true,"subscribed":"events"\}$')
    edge = env.edge(hub, spec, stun_servers=[dead_addr, turn], control_socket=esock,
                    plugins_extra=[admin_plugin(ep)])
    edge.wait_log(r"STUN server %s: no answer after 2 tries" % dead_addr)
    edge.wait_log(r"edge edge-1: public address is 127\.0\.0\.1 \(STUN server %s\)" % turn)
    hub.wait_log(r"edge edge-1: public address is 127\.0\.0\.1 \(STUN, from the edge\)")
    ev = json.loads(sub.wait_log(r'(?m)^\{"event":"publicIpDiscovered".*\}$').group(0))
    check(ev["edge"] == "edge-1" and ev["address"] == "127.0.0.1", f"publicIpDiscovered: {ev}")
    line, cport = _proxy_dest(env, up, p, 1)
    check(line == f"PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {p}\r\n".encode(),
          f"PROXY line {line!r}: want the STUN address as the destination")

    m = _ctl_json(env, esock, "metrics")
    st = m["stun"]
    check(st["requests"] >= 3 and st["timeout"] == 1 and st["ok"] == 1 and
          st["error"] == 0 and st["malformed"] == 0 and m["publicIp"] == "127.0.0.1",
          f"edge metrics: {m}")
    check(_ctl_json(env, esock, "status")["publicIp"] == "127.0.0.1", "edge status publicIp")
    hm = _ctl_json(env, hsock, "metrics")
    check([e["publicIp"] for e in hm["edges"]] == ["127.0.0.1"], f"hub metrics: {hm}")
    hs = _ctl_json(env, hsock, "status")
    check([e["publicIp"] for e in hs["edges"]] == ["127.0.0.1"], f"hub status: {hs}")
    r = env.run_core(["ctl", "-s", esock, "metrics"])
    check(r.returncode == 0 and "timeout 1" in r.stdout and "ok 1," in r.stdout and
          "publicIp" in r.stdout and "127.0.0.1" in r.stdout, f"ctl metrics: {r.stdout}")
    r = env.run_core(["ctl", "-s", hsock, "metrics"])
    check(r.returncode == 0 and "PUBLIC_IP" in r.stdout and
          any(ln.startswith("edge-1 ") and ln.rstrip().endswith("127.0.0.1")
              for ln in r.stdout.splitlines()), f"hub ctl metrics: {r.stdout}")

    wait_http(hp)
    wait_http(ep)
    for port in (hp, ep):
        code, text = http_get(port, "/metrics")
        check(code == 200, f"/metrics {code}")
        promtool(text)
    h = samples(http_get(hp, "/metrics")[1])
    check(h.get('ri_edge_public_ip_info{edge="edge-1",address="127.0.0.1"}') == 1,
          f"hub info metric: {h}")
    e = samples(http_get(ep, "/metrics")[1])
    check(e.get('ri_public_ip_info{address="127.0.0.1"}') == 1 and
          e['ri_stun_results_total{result="ok"}'] == 1 and
          e['ri_stun_results_total{result="timeout"}'] == 1 and e["ri_stun_requests_total"] >= 3,
          f"edge STUN metrics: {e}")


def test_stun_mapped_address_only(env):
    """A server that answers with MAPPED-ADDRESS only (RFC 3489 style) is
    used. Until the edge knows its address the PROXY destination is the
    address the client reached (127.0.0.2); afterwards the public one. The
    request is a well-formed Binding request; a retransmission repeats its
    transaction id; every interval (1 s here) a new transaction asks again,
    and an unchanged answer is not logged again."""
    r = Responder(env)  # silent at first
    p = env.port()
    up = env.upstream(p)
    spec = EdgeSpec("edge-1", [p], stun_interval_secs=1)
    hub = env.hub([spec])
    edge = env.edge(hub, spec, stun_servers=[r.addr])
    wait_until(lambda: len(r.txids()) >= 2, 20, "a request and its retransmission")
    req = r.requests[0]
    check(len(req) == 20 and req[:8] == struct.pack(">HHI", 1, 0, COOKIE),
          f"not a Binding request: {req.hex()}")
    check(r.txids()[0] == r.txids()[1], "the retransmission has another transaction id")
    line, cport = _proxy_dest(env, up, p, 1)
    check(line == f"PROXY TCP4 127.0.0.1 127.0.0.2 {cport} {p}\r\n".encode(),
          f"PROXY line before STUN answered: {line!r}")

    r.answer = lambda txid: [_msg(0x0101, txid, _attr(0x8022, b"test") +
                                  mapped("203.0.113.7", 4242))]
    hub.wait_log(r"edge edge-1: public address is 203\.0\.113\.7 \(STUN, from the edge\)", 30)
    line, cport = _proxy_dest(env, up, p, 2)
    check(line == f"PROXY TCP4 127.0.0.1 203.0.113.7 {cport} {p}\r\n".encode(),
          f"PROXY line after STUN answered: {line!r}")
    n = len(set(r.txids()))
    wait_until(lambda: len(set(r.txids())) >= n + 1, 20, "the next interval's request")
    check(edge.count(r"public address is 203\.0\.113\.7") == 1,
          "an unchanged address was logged again")


def test_stun_server_never_answers(env):
    """A server that never answers: each round asks it twice, then the edge
    logs it and tries again after a backoff that doubles (2 s, 4 s). The
    tunnel serves meanwhile; the hub learns no address and the PROXY
    destination stays the edge's own."""
    dead = _udp_socket()
    env.closers.append(dead.close)
    dead_addr = f"127.0.0.1:{dead.getsockname()[1]}"
    p = env.port()
    up = env.upstream(p)
    hub, edge, _ = env.pair([p], edge_opts={"stun_servers": [dead_addr]})
    edge.wait_log(r"STUN: no answer from %s; retrying in 2 s" % dead_addr)
    line, cport = _proxy_dest(env, up, p, 1)
    check(line == f"PROXY TCP4 127.0.0.1 127.0.0.2 {cport} {p}\r\n".encode(), repr(line))
    edge.wait_log(r"STUN: no answer from %s; retrying in 4 s" % dead_addr, 30)
    line, cport = _proxy_dest(env, up, p, 2)
    check(line == f"PROXY TCP4 127.0.0.1 127.0.0.2 {cport} {p}\r\n".encode(), repr(line))
    check("public address" not in hub.log(), "the hub learnt an address from nowhere")


def test_stun_malformed_responses(env):
    """Answers that are not a valid response to our request -- a wrong magic
    cookie, another transaction, an attribute overrunning the message -- are
    logged (rate-limited) and ignored: the round fails and is retried, the
    tunnel keeps working, the hub learns nothing. A valid XOR-MAPPED-ADDRESS
    answer later is taken."""
    def bad(txid):
        good = xor_mapped("198.51.100.9", 1234)
        other = bytes(b ^ 0xff for b in txid)
        overrun = bytearray(_msg(0x0101, txid, good))
        overrun[23] = 40  # the attribute claims 40 bytes
        return [_msg(0x0101, txid, good, cookie=COOKIE ^ 1), _msg(0x0101, other, good),
                bytes(overrun)]

    r = Responder(env, bad)
    p = env.port()
    up = env.upstream(p)
    esock = env.path("edge.sock")
    hub, edge, _ = env.pair([p], edge_opts={"stun_servers": [r.addr], "control_socket": esock})
    for what in ("wrong magic cookie", "not our transaction", "overruns the message"):
        edge.wait_log(r"STUN server %s: bad response: .*%s" % (r.addr, what))
    edge.wait_log(r"STUN: no answer from %s; retrying in 2 s" % r.addr)
    st = _ctl_json(env, esock, "metrics")["stun"]
    check(st["malformed"] >= 3 and st["timeout"] >= 1 and st["ok"] == 0, f"counts: {st}")
    line, cport = _proxy_dest(env, up, p, 1)
    check(line == f"PROXY TCP4 127.0.0.1 127.0.0.2 {cport} {p}\r\n".encode(), repr(line))
    check("public address" not in hub.log(), "the hub took an address from a bad answer")
    r.answer = lambda txid: [_msg(0x0101, txid, xor_mapped("198.51.100.9", 1234))]
    hub.wait_log(r"edge edge-1: public address is 198\.51\.100\.9 ", 30)
    line, cport = _proxy_dest(env, up, p, 2)
    check(line == f"PROXY TCP4 127.0.0.1 198.51.100.9 {cport} {p}\r\n".encode(), repr(line))


def test_hub_checks_addr_frames(env):
    """The hub takes an ADDR frame from an edge (a rogue one here, ri-peer:
    203.0.113.7), uses it as the PROXY destination of a stream whose edge
    address (127.0.0.2) is private, and closes the tunnel on an ADDR that
    breaks the rules (family 5) with the reason logged."""
    p = env.port()
    up = env.upstream(p)
    a = EdgeSpec("edge-a", [p])
    hub = env.hub([a])
    peer = env.peer("edge", f"127.0.0.1:{hub.port}", a.id, a.secret)
    peer.send("frame 0x0b 0 04" + "cb007107" + "00" * 12)
    hub.wait_log(r"edge edge-a: public address is 203\.0\.113\.7 \(STUN, from the edge\)")
    peer.send(f"open 1 {p}")
    up.wait_conns(1)
    line = up.conns[0].proxy_line
    check(line == f"PROXY TCP4 127.0.0.1 203.0.113.7 40000 {p}\r\n".encode(), repr(line))
    peer.send("frame 0x0b 0 05" + "cb007107" + "00" * 12)
    hub.wait_log(r"bad ADDR: ADDR with address family 5")
    peer.wait_log(r"(?m)^CLOSED")
