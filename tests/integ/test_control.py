"""The control socket (hub and edge) and `ri-core ctl`: every command, bad
requests, a client that never reads, a subscriber that falls behind,
runtime edge changes kept in hub.edges_file."""
import json
import os
import re
import socket
import stat
import subprocess
import threading

from harness import T, EdgeSpec, check, echo_check, fail, new_secret


class Ctl:
    """One control-socket connection: request() sends a line, reads one."""

    def __init__(self, env, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        env.closers.append(self.s.close)
        self.s.settimeout(T(20))
        self.s.connect(path)
        self.buf = b""

    def send_raw(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                fail("the control socket closed instead of answering")
            self.buf += d
        ln, self.buf = self.buf.split(b"\n", 1)
        return json.loads(ln)

    def request(self, cmd, **args):
        self.send_raw((json.dumps(dict(cmd=cmd, **args)) + "\n").encode())
        return self.line()

    def expect_eof(self, what):
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return
        except ConnectionResetError:
            return
        except socket.timeout:
            fail(f"{what}: the connection stayed open")


def _ok(a, what):
    check(a.get("ok") is True, f"{what}: {a}")
    return a


def _ctl(env, sock, *args, input=None):
    return env.run_core(["ctl", "-s", sock, *args], input=input)


def _hub(env, edges, **opts):
    sock = env.path("hub.sock")
    hub = env.hub(edges, control_socket=sock, **opts)
    return hub, sock


def test_status_and_streams_hub_and_edge(env):
    p, q = env.ports(2)
    up = env.upstream(p)
    spec = EdgeSpec("edge-st", [p, q])
    hub, hsock = _hub(env, [spec])
    esock = env.path("edge.sock")
    edge = env.edge(hub, spec, control_socket=esock)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"x" * 5000)
    up.wait_conns(1)

    st = _ok(Ctl(env, hsock).request("status"), "hub status")
    check(st["role"] == "hub" and st["listen"] == f"127.0.0.1:{hub.port}", f"status: {st}")
    check(st["plugins"]["scheduler"] and "uptime" in st and st["version"], f"status: {st}")
    e = [x for x in st["edges"] if x["id"] == "edge-st"]
    check(len(e) == 1 and e[0]["connected"] and e[0]["listenPorts"] == sorted([p, q]),
          f"edge in status: {st['edges']}")
    check(e[0]["activeStreams"] == 1 and e[0]["remote"].startswith("127.0.0.1:"),
          f"edge in status: {e[0]}")
    check(e[0]["bytesUp"] >= 5000 and e[0]["bytesDown"] >= 5000, f"bytes: {e[0]}")
    check(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e[0]["connectedSince"]),
          f"connectedSince: {e[0]}")

    ss = _ok(Ctl(env, hsock).request("streams"), "hub streams")["streams"]
    check(len(ss) == 1, f"hub streams: {ss}")
    s0 = ss[0]
    check(s0["edge"] == "edge-st" and s0["port"] == p and s0["bytesUp"] == 5000 and
          s0["bytesDown"] == 5000 and s0["class"] == "normal" and s0["window"] > 0 and
          s0["client"] == "%s:%d" % c.getsockname()[:2] and s0["age"] >= 0, f"hub stream: {s0}")

    es = _ok(Ctl(env, esock).request("status"), "edge status")
    check(es["role"] == "edge" and es["connected"] is True and
          es["listenPorts"] == sorted([p, q]) and es["activeStreams"] == 1 and
          es["hub"] == f"127.0.0.1:{hub.port}" and es["reconnects"] == 0, f"edge status: {es}")
    ess = _ok(Ctl(env, esock).request("streams"), "edge streams")["streams"]
    check(len(ess) == 1 and ess[0]["port"] == p and ess[0]["bytesUp"] == 5000,
          f"edge streams: {ess}")

    # the CLI: a table by default, raw JSON with --json anywhere
    r = _ctl(env, hsock, "status")
    check(r.returncode == 0 and re.search(r"^edge-st\s+config\s+yes\s", r.stdout, re.M),
          f"ctl status: {r.stdout}{r.stderr}")
    r = _ctl(env, hsock, "streams", "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["streams"][0]["port"] == p,
          f"ctl streams --json: {r.stdout}{r.stderr}")
    r = env.run_core(["ctl", "--json", "-s", esock, "status"])
    check(r.returncode == 0 and json.loads(r.stdout)["connected"] is True, r.stdout)

    # metrics: the echo's frames and bytes, all in the normal class; no STUN
    hm = _ok(Ctl(env, hsock).request("metrics"), "hub metrics")
    em = _ok(Ctl(env, esock).request("metrics"), "edge metrics")
    for who, m in (("hub", hm), ("edge", em)):
        cl = {x["class"]: x for x in m["classes"]}
        check(list(cl) == ["normal", "sustained"] and cl["normal"]["bytesSent"] >= 5000 and
              cl["normal"]["bytesReceived"] >= 5000 and cl["normal"]["framesSent"] >= 1 and
              cl["sustained"]["bytesSent"] == 0 and m["controlFramesSent"] > 0 and
              m["controlFramesReceived"] > 0 and m["schedQueued"] == 0 and
              m["windowStalls"] == 0, f"{who} metrics: {m}")
    check(hm["edges"][0]["schedQueued"] == 0 and hm["edges"][0]["publicIp"] is None and
          em["publicIp"] is None and em["stun"]["requests"] == 0, f"{hm} {em}")
    r = _ctl(env, hsock, "metrics")
    check(r.returncode == 0 and re.search(r"^normal\s+[1-9]\d*\s+[1-9]\d*\s+\d{4,}\s+\d{4,}$",
                                           r.stdout, re.M) and
          re.search(r"^edge-st\s+yes\s+1\s", r.stdout, re.M) and
          re.search(r"^windowStalls\s+0$", r.stdout, re.M), f"ctl metrics: {r.stdout}")
    r = _ctl(env, esock, "metrics")
    check(r.returncode == 0 and re.search(r"^stun\s+requests 0, ok 0,", r.stdout, re.M),
          f"edge ctl metrics: {r.stdout}")
    c.close()
    # exit codes: 1 for ok:false, 2 for usage
    r = _ctl(env, esock, "update_edges", '{"edges": []}')
    check(r.returncode == 1 and "unknown command 'update_edges'" in r.stderr,
          f"edge update_edges: {r.returncode} {r.stderr}")
    check(env.run_core(["ctl", "status"]).returncode == 2, "ctl without -s")
    check(_ctl(env, hsock).returncode == 2, "ctl without a command")
    check(_ctl(env, hsock, "status", "[1]").returncode == 2, "ctl with non-object args")
    r = _ctl(env, env.path("nothing.sock"), "status")
    check(r.returncode == 1 and "cannot connect" in r.stderr, f"no socket: {r.stderr}")
    mode = stat.S_IMODE(os.stat(hsock).st_mode)
    check(mode == 0o600, f"control socket mode {mode:o}")
    hub.stop()
    check(not os.path.exists(hsock), "the hub left its control socket behind")


def test_bad_requests_get_errors_and_others_go_on(env):
    hub, sock = _hub(env, [EdgeSpec("edge-b", [env.port()])])
    c = Ctl(env, sock)
    other = Ctl(env, sock)
    cases = [
        (b"this is not json\n", r"not JSON"),
        (b"[1, 2]\n", r"a request is a JSON object"),
        (b'{"cmd": 5}\n', r"'cmd' must be a string"),
        (b'{"nocmd": 1}\n', r"'cmd' must be a string"),
        (b'{"cmd": "frobnicate"}\n', r"unknown command 'frobnicate'"),
        (b'{"cmd": "update_edges", "edges": 3}\n', r"'edges' must be an array"),
        (b'{"cmd": "update_edges", "edges": [{"id": "a", "secret": "' + new_secret().encode()
         + b'", "listen_ports": ["80"]}]}\n', r"edges\[0\] \(id 'a'\): listen port must be"),
        (b'{"cmd": "update_edges", "edges": [{"id": "ok-1", "secret": "' + new_secret().encode()
         + b'"}, {"id": "has space", "secret": "' + new_secret().encode() + b'"}]}\n',
         r"edges\[1\]: .*space"),
        (b'{"cmd": "update_edges", "edges": [{"id": "a", "secret": "short"}]}\n',
         r"edges\[0\] \(id 'a'\): secret has 5 characters"),
        (b'{"cmd": "provision", "id": "p1", "listen_ports": [1, 1]}\n', r"listed twice"),
        (b'{"cmd": "provision", "id": "edge-b"}\n', r"exists already"),
        (b'{"cmd": "provision", "id": "p2", "secret": "x"}\n', r"the hub makes the secret"),
    ]
    for data, pat in cases:
        c.send_raw(data)
        a = c.line()
        check(a.get("ok") is False and re.search(pat, a.get("error", "")),
              f"{data[:60]!r}: {a}")
        _ok(other.request("status"), "another client meanwhile")
    # all-or-nothing: the valid first entry of a refused list was not applied
    ids = [e["id"] for e in _ok(c.request("status"), "status")["edges"]]
    check(ids == ["edge-b"], f"edges after refused updates: {ids}")
    # a line over 64 KiB: an error, then the connection closes
    big = Ctl(env, sock)
    big.send_raw(b'{"cmd": "status", "x": "' + b"a" * (70 * 1024))
    a = big.line()
    check(a["ok"] is False and "longer than 65536 bytes" in a["error"], f"long line: {a}")
    big.expect_eof("after an over-long request")
    _ok(other.request("status"), "another client after the long line")
    hub.wait_log(r"control: dropping client \d+: request line longer than 65536 bytes")


def test_stuck_client_is_dropped_and_streams_flow(env):
    p = env.port()
    env.upstream(p)
    hub, sock = _hub(env, [EdgeSpec("edge-stuck", [p])])
    edge = env.edge(hub, hub.edges[0])
    stuck = Ctl(env, sock)
    m = hub.mark()
    stop = threading.Event()

    def flood():  # asks and asks, never reads an answer
        line = b'{"cmd": "status"}\n' * 256
        try:
            while not stop.is_set():
                stuck.s.sendall(line)
        except OSError:
            pass

    th = threading.Thread(target=flood, daemon=True)
    th.start()
    s = env.connect("127.0.0.2", p)
    n = 0
    while not hub.count(r"control: dropping client \d+: more than 1048576 bytes", since=m):
        echo_check(s, b"still flowing %d " % n * 100)  # the data path is not held up
        n += 1
        check(n < 100000, "the stuck client was never dropped")
    stop.set()
    stuck.expect_eof("the stuck client")
    th.join(T(20))
    echo_check(s, b"after the drop")
    _ok(Ctl(env, sock).request("status"), "a new client after the drop")


def test_subscribe_events_and_slow_subscriber(env):
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-sub", [p])
    hub, sock = _hub(env, [spec])
    sub = Ctl(env, sock)
    check(sub.request("subscribe")["ok"] is True, "subscribe")
    # the CLI follows events too (--json: one raw line each)
    cli = subprocess.Popen([env.core, "ctl", "-s", sock, "subscribe", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    env.closers.append(lambda: (cli.kill(), cli.wait()))
    first = cli.stdout.readline()  # subscribed before the edge connects
    check(json.loads(first)["ok"] is True, f"ctl subscribe: {first}")
    edge = env.edge(hub, spec)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"y" * 1000)
    c.close()
    seen = []
    while not any(e["event"] == "streamClosed" for e in seen):
        seen.append(sub.line())
    names = [e["event"] for e in seen]
    check("edgeConnected" in names and "streamOpened" in names, f"events: {names}")
    ec = [e for e in seen if e["event"] == "edgeConnected"][0]
    check(ec["edge"] == "edge-sub" and ec["ports"] == [p] and
          re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", ec["time"]), f"edgeConnected: {ec}")
    sc = [e for e in seen if e["event"] == "streamClosed"][0]
    check(sc["bytesUp"] == 1000 and sc["bytesDown"] == 1000 and sc["code"] == 0 and
          sc["port"] == p and sc["duration"] >= 0, f"streamClosed: {sc}")
    # peer: the tunnel's remote address, as in the tunnel's own events (not a log label)
    so = [e for e in seen if e["event"] == "streamOpened"][0]
    check(so["peer"] == ec["peer"] and re.match(r"127\.0\.0\.\d+:\d+$", so["peer"]) and
          sc["peer"] == ec["peer"], f"stream events' peer: {so['peer']!r}, {sc['peer']!r}, "
          f"edgeConnected's {ec['peer']!r}")
    lines = []
    while not lines or '"streamClosed"' not in lines[-1]:
        line = cli.stdout.readline()
        check(line, f"ctl subscribe ended early after {lines}")
        lines.append(line)
    got = [json.loads(x)["event"] for x in lines]
    check(got[0] == "edgeConnected", f"ctl subscribe saw {got}")
    # reals at 9 significant digits, not jansson's default 17 (0.0094408730000000007)
    dur = re.search(r'"duration":\s*([0-9.eE+-]+)', lines[-1]).group(1)
    digits = re.sub(r"[eE].*$", "", dur).replace(".", "").lstrip("0")
    check(len(digits) <= 9, f"duration printed as {dur}")
    cli.terminate()
    check(cli.wait(T(10)) == 0, "ctl subscribe exits 0 when interrupted")

    # a subscriber that does not read loses events, then hears how many
    m = hub.mark()
    n = 0
    while not hub.count(r"control: subscriber \d+ does not keep up", since=m):
        s = env.connect("127.0.0.2", p)
        s.close()
        n += 1
        check(n < 20000, "the slow subscriber never fell behind")
    for _ in range(3):  # events after the drop too
        s = env.connect("127.0.0.2", p)
        echo_check(s, b"z")
        s.close()
    dropped = None
    while dropped is None:
        e = sub.line()
        if e["event"] == "dropped":
            dropped = e
    check(dropped["count"] > 0, f"dropped: {dropped}")
    _ok(Ctl(env, sock).request("status"), "status while a subscriber lags")


def test_update_edges_pushes_ports_and_removes(env):
    a, b, c = env.ports(3)
    for x in (a, b, c):
        env.upstream(x)
    keep, gone = EdgeSpec("edge-keep", [a]), EdgeSpec("edge-gone", [b])
    hub, sock = _hub(env, [])
    ctl = Ctl(env, sock)
    doc = lambda specs: [{"id": s.id, "secret": s.secret, "listen_ports": s.ports}
                         for s in specs]
    env.secrets.update({keep.secret, gone.secret})
    r = _ok(ctl.request("update_edges", edges=doc([keep, gone])), "add two edges")
    check(r["edges"] == 2 and r["persisted"] is False, f"answer: {r}")
    ek = env.edge(hub, keep)
    eg = env.edge(hub, gone)
    m, mg = ek.mark(), eg.mark()
    keep.ports = [a, c]
    _ok(ctl.request("update_edges", edges=doc([keep])), "change one, drop one")
    ek.wait_log(r"hub assigns 2 ports: %d,%d" % tuple(sorted((a, c))), since=m)
    ek.wait_log(r"listening on 127\.0\.0\.2 port %d\b" % c, since=m)
    check(ek.count(r"connected to hub", since=m) == 0, "the kept edge reconnected")
    hub.wait_log(r"hub: control: edge edge-gone removed")
    env.expect_port_closed("127.0.0.2", b, "the removed edge's port")
    s = env.connect("127.0.0.2", c)
    echo_check(s, b"new port")
    st = _ok(ctl.request("status"), "status")
    check([e["id"] for e in st["edges"]] == ["edge-keep"] and
          st["edges"][0]["source"] == "runtime", f"status: {st['edges']}")


def test_provision_token_starts_an_edge_and_survives_restart(env):
    p, q = env.ports(2)
    env.upstream(p)
    env.upstream(q)
    cfg_edge = EdgeSpec("edge-both", [q])
    hub, sock = _hub(env, [cfg_edge], edges_file="edges.json")
    ctl = Ctl(env, sock)
    a = _ok(ctl.request("provision", id="edge-new", listen_ports=[p]), "provision")
    env.secrets.add(a["secret"])
    check(a["persisted"] is True and a["hubPort"] == hub.port and a["hubHost"] == "127.0.0.1",
          f"provision: {a}")
    dec = env.run_core(["token", "decode", "-"], input=a["token"] + "\n")
    check(json.loads(dec.stdout) == {"hubHost": "127.0.0.1", "hubPort": hub.port,
                                      "edgeId": "edge-new", "secret": a["secret"]},
          f"token: {dec.stdout}")
    spec = EdgeSpec("edge-new", [p], secret=a["secret"])
    edge = env.edge(hub, spec, token=a["token"])
    s = env.connect("127.0.0.2", p)
    echo_check(s, b"provisioned")
    s.close()
    path = os.path.join(env.dir, "edges.json")
    check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, "edges file mode")
    stored = json.load(open(path))
    check([e["id"] for e in stored["edges"]] == ["edge-new"], f"edges file: {stored}")
    # the CLI provisions too (hub_host given), and prints the token
    r = _ctl(env, sock, "provision", '{"id": "edge-cli", "hub_host": "hub.example.com"}')
    check(r.returncode == 0 and re.search(r"^token\s+\S{40,}", r.stdout, re.M), r.stdout + r.stderr)
    tok = re.search(r"^token\s+(\S+)", r.stdout, re.M).group(1)
    sec = re.search(r"^secret\s+(\S+)", r.stdout, re.M).group(1)
    env.secrets.add(sec)
    dec = json.loads(env.run_core(["token", "decode", tok]).stdout)
    check(dec["hubHost"] == "hub.example.com" and dec["edgeId"] == "edge-cli", f"{dec}")

    # SIGHUP re-reads the config, keeps the runtime edges
    env.reload(hub)
    ids = {e["id"]: e["source"] for e in _ok(ctl.request("status"), "status")["edges"]}
    check(ids == {"edge-both": "config", "edge-new": "runtime", "edge-cli": "runtime"},
          f"after SIGHUP: {ids}")
    # an id in the config and the runtime edges: the runtime entry wins
    cfg_edge2 = {"id": "edge-both", "secret": cfg_edge.secret, "listen_ports": [p, q]}
    _ok(ctl.request("update_edges", edges=[{"id": "edge-new", "secret": a["secret"],
                                              "listen_ports": [p]}, cfg_edge2,
                                             {"id": "edge-cli", "secret": sec}]),
        "update_edges with a config id")
    # a restart: the runtime edges come back from the file
    hub.stop()
    em = edge.mark()
    hub2 = env.restart_hub(hub)
    hub2.wait_log(r"hub: 3 runtime edges from \S*edges\.json")
    hub2.wait_log(r"edge edge-both is in \S+ \(line \d+\) and in the runtime edges")
    edge.wait_log(r"connected to hub", since=em)
    s = env.connect("127.0.0.2", p)
    echo_check(s, b"after the restart")
    st = _ok(Ctl(env, sock).request("status"), "status after restart")
    both = [e for e in st["edges"] if e["id"] == "edge-both"][0]
    check(both["source"] == "runtime" and both["listenPorts"] == sorted([p, q]), f"{both}")


def test_reload_over_the_socket(env):
    p = env.port()
    hub, sock = _hub(env, [EdgeSpec("edge-r", [p])])
    esock = env.path("edge.sock")
    edge = env.edge(hub, hub.edges[0], control_socket=esock)
    r = _ctl(env, sock, "reload")
    check(r.returncode == 0 and "1 edge" in r.stdout, f"reload: {r.stdout}{r.stderr}")
    good = open(hub.cfg_path).read()
    with open(hub.cfg_path, "w") as f:
        f.write(good.replace("hub = {", "hub = {\n  max_streams = \"lots\";", 1))
    r = _ctl(env, sock, "reload")
    check(r.returncode == 1 and re.search(r"hub\.cfg:\d+: .*max_streams", r.stderr),
          f"broken reload: {r.returncode} {r.stderr}")
    r = _ctl(env, sock, "--json", "reload")
    a = json.loads(r.stdout)
    check(r.returncode == 1 and a["ok"] is False and
          any(re.search(r"hub\.cfg:\d+: ", x) for x in a["errors"]), f"--json: {a}")
    with open(hub.cfg_path, "w") as f:
        f.write(good)
    check(_ctl(env, sock, "reload").returncode == 0, "reload after the fix")
    # the edge: a broken config answers its errors, the running one stays
    egood = open(edge.cfg_path).read()
    with open(edge.cfg_path, "w") as f:
        f.write(egood.replace("edge = {", "edge = {\n  hold_max = -5;", 1))
    r = _ctl(env, esock, "reload")
    check(r.returncode == 1 and re.search(r"edge-edge-r\.cfg:\d+: ", r.stderr),
          f"edge broken reload: {r.stderr}")
    with open(edge.cfg_path, "w") as f:
        f.write(egood)
    check(_ctl(env, esock, "reload").returncode == 0, "edge reload after the fix")
    _ok(Ctl(env, esock).request("status"), "edge status")


def test_stop_answers_a_reload_still_resolving(env):
    """A reload over the socket answers once target_host resolves; a hub
    told to stop meanwhile abandons it and says so to the waiting client
    ({"ok": false, "error": "shutting down: ..."}) rather than closing on
    it: at once while it drains an open stream, and also when it has
    nothing to drain and exits straight away."""
    slow = os.path.join(env.build, "slowdns.so")
    check(os.path.exists(slow), f"{slow} not built")
    extra = {"LD_PRELOAD": slow, "RI_SLOWDNS_SECS": "8",
             "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    for draining in (True, False):
        p = env.port()
        env.upstream(p)
        spec = EdgeSpec(f"edge-ab{int(draining)}", [p])
        sock = env.path(f"hub{int(draining)}.sock")
        hub = env.hub([spec], name=f"hub{int(draining)}", control_socket=sock, extra_env=extra,
                      drain_timeout_secs=30)
        if draining:
            env.edge(hub, spec)
            c = env.connect("127.0.0.2", p)
            echo_check(c, b"open during the stop")
        env.rewrite_hub(hub, target_host="127-0-0-1.slow.ri.test")
        ctl = Ctl(env, sock)
        m = hub.mark()
        ctl.send_raw(b'{"cmd": "reload"}\n')
        hub.wait_log(r"hub: control socket: reloading", since=m)
        hub.signal(__import__("signal").SIGTERM)
        a = ctl.line()
        check(a == {"ok": False, "error": "shutting down: reload abandoned",
                    "errors": ["shutting down: reload abandoned"]}, f"the answer: {a}")
        if draining:
            check(hub.alive(), "the answer waited for the drain")
            hub.wait_log(r"reload waiting for target_host is abandoned", since=m)
            c.close()
        hub.wait_exit(20, "stopping with a reload abandoned")
        check(hub.count(r"hub: reloaded", since=m) == 0, "the abandoned reload was applied")
