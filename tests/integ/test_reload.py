"""SIGHUP on the hub: ports pushed to a connected edge, a bad config kept
out, an edge removed."""
import os
import re

from harness import EdgeSpec, check, echo_check


def _port_of(sock):
    return sock.getsockname()[1]


def _conn_of(up, sock):
    cport = _port_of(sock)
    for c in up.conns:
        if c.proxy_line and int(c.proxy_line.split()[4]) == cport:
            return c
    return None


def test_port_hot_reload(env):
    a, b, c = env.ports(3)
    ups = {p: env.upstream(p) for p in (a, b, c)}
    spec = EdgeSpec("edge-hot", [a, b])
    hub = env.hub([spec])
    edge = env.edge(hub, spec)
    env.expect_refused("127.0.0.2", c, "port c before the reload")
    s = env.connect("127.0.0.2", a)
    echo_check(s, b"before the reload " * 1000)
    sb = env.connect("127.0.0.2", b)  # a stream on the port that goes away
    echo_check(sb, b"on b")

    m, hm = edge.mark(), hub.mark()
    spec.ports = [a, c]
    env.rewrite_hub(hub)
    env.reload(hub)
    hub.wait_log(r"edge edge-hot: ports changed: pushing 2 ports", since=hm)
    edge.wait_log(r"hub assigns 2 ports: %d,%d" % tuple(sorted((a, c))), since=m)
    edge.wait_log(r"listening on 127\.0\.0\.2 port %d\b" % c, since=m)
    edge.wait_log(r"closed port %d\b" % b, since=m)
    check(edge.count(r"listening on 127\.0\.0\.2 port %d\b" % a, since=m) == 0,
          "the kept port was reopened")
    check(edge.count(r"connected to hub", since=m) == 0, "the edge reconnected")

    # the new port accepts, the removed one refuses, the kept one still accepts
    n = env.connect("127.0.0.2", c)
    echo_check(n, b"new port")
    n.close()
    env.expect_port_closed("127.0.0.2", b, "the removed port")
    n2 = env.connect("127.0.0.2", a)
    echo_check(n2, b"kept port, new stream")
    n2.close()
    # streams opened before the change go on, on the kept and on the removed port
    echo_check(s, b"after the reload " * 1000)
    echo_check(sb, b"still on b")
    s.close()
    sb.close()
    ups[a].wait(lambda: len(ups[a].conns) == 2 and all(x.closed for x in ups[a].conns), 20,
                "both streams on port a to end")
    old = [x for x in ups[a].conns if x.head.startswith(b"before the reload")]
    check(len(old) == 1, "the first stream on port a is not found upstream")
    check(old[0].nbytes == len(b"before the reload " * 1000) + len(b"after the reload " * 1000),
          f"the first stream carried {old[0].nbytes} bytes")
    check(len(ups[c].conns) == 1 and len(ups[b].conns) == 1,
          f"upstream b saw {len(ups[b].conns)}, c saw {len(ups[c].conns)} connections")


def test_bad_config_on_sighup_keeps_running(env):
    a, b = env.ports(2)
    ups = [env.upstream(a), env.upstream(b)]
    spec = EdgeSpec("edge-keep", [a, b])
    hub = env.hub([spec])
    edge = env.edge(hub, spec)
    good = open(hub.cfg_path).read()
    em = edge.mark()
    # 1: a syntax error; 2: valid syntax, invalid content (port out of range)
    bad_syntax = good.replace("hub = {", "hub = {\n  listen = ;", 1)
    bad_value = re.sub(r"listen_ports = \[[^\]]*\]", "listen_ports = [ 70000 ]", good)
    for what, text in (("syntax error", bad_syntax), ("bad value", bad_value)):
        with open(hub.cfg_path, "w") as f:
            f.write(text)
        hm = hub.mark()
        env.reload(hub, expect_ok=False)
        log = hub.log_since(hm)
        check(re.search(re.escape(hub.cfg_path) + r":\d+: ", log),
              f"{what}: the hub's log does not name FILE:LINE of the error:\n{log}")
        check(hub.alive(), f"{what}: the hub died")
        for p in (a, b):
            cl = env.connect("127.0.0.2", p)
            echo_check(cl, f"after a {what} on port {p}".encode())
            cl.close()
    check(edge.count(r"connected to hub|closed port|reconnecting", since=em) == 0,
          "the edge noticed the failed reloads")
    # the good config reloads fine again afterwards
    with open(hub.cfg_path, "w") as f:
        f.write(good)
    env.reload(hub)
    cl = env.connect("127.0.0.2", a)
    echo_check(cl)
    cl.close()


def test_edge_removed_from_config(env):
    a, b = env.ports(2)
    ua, ub = env.upstream(a), env.upstream(b)
    gone = EdgeSpec("edge-gone", [a])
    stays = EdgeSpec("edge-stays", [b])
    hub = env.hub([gone, stays])
    eg = env.edge(hub, gone, bind="127.0.0.2")
    es = env.edge(hub, stays, bind="127.0.0.3")
    c = env.connect("127.0.0.2", a)
    echo_check(c)
    c.close()
    m, sm = eg.mark(), es.mark()
    env.rewrite_hub(hub, edges=[stays])
    env.reload(hub)
    hub.wait_log(r"edge edge-gone: removed from the hub's edges: disconnecting")
    eg.wait_log(r"closed port %d\b" % a, since=m)
    eg.wait_log(r"edge removed from the hub config|edge removed", since=m)
    env.expect_port_closed("127.0.0.2", a, "the removed edge's port")
    # it may try again, but the hub no longer knows it (and says only that
    # authentication failed; its own log says why)
    eg.wait_log(r"peer refused us: authentication failed", 20, since=m)
    hub.wait_log(r"unknown edge id 'edge-gone'")
    check(eg.count(r"listening on", since=m) == 0, "the removed edge opened a port again")
    # the other edge was not touched
    check(es.count(r"connected to hub|closed port", since=sm) == 0, "the other edge was disturbed")
    c = env.connect("127.0.0.3", b)
    echo_check(c)
    c.close()
    ub.wait_conns(1)
    check(len(ua.conns) == 1, f"upstream a saw {len(ua.conns)} connections")


def test_secret_change_then_edge_reload(env):
    """A new secret on the hub disconnects the edge and keeps it out; the
    edge's own SIGHUP with the new secret brings it back."""
    p = env.port()
    up = env.upstream(p)
    spec = EdgeSpec("edge-rotate", [p])
    hub = env.hub([spec])
    edge = env.edge(hub, spec)
    old_secret = spec.secret
    spec.secret = "rotated-" + os.urandom(16).hex()
    env.secrets.add(spec.secret)
    m, hm = edge.mark(), hub.mark()
    env.rewrite_hub(hub)
    env.reload(hub)
    hub.wait_log(r"edge edge-rotate: secret changed: disconnecting", since=hm)
    edge.wait_log(r"closed port %d\b" % p, since=m)
    # the edge hears the one generic refusal; the detail is the hub's alone
    edge.wait_log(r"the hub refused this edge \(authentication failed\)", since=m)
    check(edge.count(r"secret changed", since=m) == 0, "the hub told the edge its secret changed")
    env.expect_port_closed("127.0.0.2", p, "after the secret changed")
    hub.wait_log(r"wrong secret for edge 'edge-rotate'", since=hm)  # the old secret retried
    # the edge learns the new secret on its own reload
    with open(edge.cfg_path) as f:
        text = f.read()
    check(old_secret in text, "old secret not in the edge config")
    with open(edge.cfg_path, "w") as f:
        f.write(text.replace(old_secret, spec.secret))
    m = edge.mark()
    env.reload(edge)
    env.wait_edge_ready(edge, [p], since=m)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"with the new secret")
    c.close()
    up.wait_conns(1)


def test_edge_reload_keeps_streams(env):
    """SIGHUP on the edge with the same hub settings: no reconnect, the
    ports come back, an open stream is not disturbed."""
    p = env.port()
    up = env.upstream(p)
    hub, edge, spec = env.pair([p])
    s = env.connect("127.0.0.2", p)
    echo_check(s, b"before the edge reload")
    with open(edge.cfg_path) as f:
        text = f.read()
    with open(edge.cfg_path, "w") as f:
        f.write(text.replace('log_level = "info";', 'log_level = "debug";'))
    m = edge.mark()
    env.reload(edge)
    # the port moves to the new listener instance without closing, and the
    # log does not call that closing (it says so at debug level)
    edge.wait_log(r"kept listening \(handed over\) on 127\.0\.0\.2 port %d\b" % p, since=m)
    check(edge.count(r"closed port", since=m) == 0, "a kept port was logged as closed")
    check(edge.count(r"connected to hub|reconnecting", since=m) == 0, "the edge reconnected")
    echo_check(s, b"after the edge reload")
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"a new stream after the edge reload")
    c.close()
    s.close()
    up.wait_conns(2)
    # a broken edge config on SIGHUP is refused and changes nothing
    with open(edge.cfg_path, "w") as f:
        f.write("role = \"edge\";\nedge = { nonsense = 1; };\n")
    m = edge.mark()
    env.reload(edge, expect_ok=False)
    check(re.search(re.escape(edge.cfg_path) + r":\d+: ", edge.log_since(m)),
          "the edge's reload error does not name FILE:LINE")
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"after a failed edge reload")
    c.close()


def test_reload_to_no_ports_and_back(env):
    a, b = env.ports(2)
    ua, ub = env.upstream(a), env.upstream(b)
    spec = EdgeSpec("edge-empty", [a, b])
    hub = env.hub([spec])
    edge = env.edge(hub, spec)
    m = edge.mark()
    spec.ports = []
    env.rewrite_hub(hub)
    env.reload(hub)
    edge.wait_log(r"hub assigns 0 ports: \(none\)", since=m)
    env.expect_port_closed("127.0.0.2", a)
    env.expect_port_closed("127.0.0.2", b)
    check(edge.count(r"connected to hub", since=m) == 0, "the edge reconnected")
    m = edge.mark()
    spec.ports = [b]
    env.rewrite_hub(hub)
    env.reload(hub)
    edge.wait_log(r"listening on 127\.0\.0\.2 port %d\b" % b, since=m)
    c = env.connect("127.0.0.2", b)
    echo_check(c)
    c.close()
    env.expect_refused("127.0.0.2", a)
    ub.wait_conns(1)
    check(not ua.conns, "port a's upstream got a connection")


def test_edge_reload_loses_no_client(env):
    """Clients connecting while the edge reloads are neither refused nor
    reset: the new listener opens the port before the old one closes, and
    the old one hands over what is queued on it."""
    import signal
    import socket
    import threading
    p = env.port()
    env.upstream(p)
    hub, edge, spec = env.pair([p])
    stats = {"ok": 0, "refused": 0, "other": 0}
    stop = []

    def hammer():
        while not stop:
            s = socket.socket()
            s.settimeout(10)
            try:
                s.connect(("127.0.0.2", p))
                stats["ok"] += 1
            except ConnectionRefusedError:
                stats["refused"] += 1
            except OSError:
                stats["other"] += 1
            finally:
                s.close()

    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    try:
        for _ in range(10):
            m = edge.mark()
            edge.signal(signal.SIGHUP)
            edge.wait_log("edge: reloaded", since=m)
    finally:
        stop.append(1)
        t.join(30)
    check(stats["ok"] > 0, "no connection was made during the reloads: %r" % stats)
    check(stats["refused"] == 0, "clients were refused during edge reloads: %r" % stats)
    # A SYN that lands in the old socket's queue between its last accept and
    # its close is reset by the kernel (a window of microseconds per reload;
    # net.ipv4.tcp_migrate_req narrows it): allow at most one per reload.
    check(stats["other"] <= 10, "clients were reset during edge reloads: %r" % stats)


# ---- reloads that do what they say (each failed before the core restructure) ----

def _edit(path, old, new):
    """Replaces text in a config file (for a reload)."""
    with open(path) as f:
        text = f.read()
    check(old in text, f"{old!r} not in {path}")
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def _tp(env, name):
    return os.path.join(env.build, "test-plugins", name)


def test_failed_reload_with_edge_config_keeps_hub_role(env):
    """A hub given an edge config on SIGHUP refuses it and stays a hub in
    every respect, down to what its plugins are told (api->role)."""
    p = env.port()
    up = env.upstream(p, proxy=False)
    plugins = ['{ name = "auth_secret"; }', f'{{ name = "tp_role"; file = "{_tp(env, "tp_role.so")}"; }}']
    spec = EdgeSpec("edge-r", [p])
    hub = env.hub([spec], plugins=plugins)
    edge = env.edge(hub, spec)
    good = open(hub.cfg_path).read()
    edge_cfg = open(edge.cfg_path).read()
    with open(hub.cfg_path, "w") as f:
        f.write(edge_cfg)
    m = env.reload(hub, expect_ok=False)
    hub.wait_log(r"not a hub config", since=m)
    with open(hub.cfg_path, "w") as f:
        f.write(good)
    c = env.connect("127.0.0.2", p)
    c.sendall(b"x")
    up.wait(lambda: up.conns and up.conns[0].head.startswith(b"role="), 20, "the header")
    check(up.conns[0].head.startswith(b"role=hub\r\n"),
          f"after a refused edge config the hub's plugin sees {bytes(up.conns[0].head[:12])!r}")


def test_reload_keeps_debug_flag(env):
    spec = EdgeSpec("edge-d", [env.port()])
    hub = env.hub([spec], args=["-d"])
    env.peer("edge", f"127.0.0.1:{hub.port}", spec.id, spec.secret, name="before")
    hub.wait_log(r"debug .*hub: connection from")  # -d: debug level from the start
    m = env.reload(hub)  # the file says log_level = "info"
    env.peer("edge", f"127.0.0.1:{hub.port}", spec.id, spec.secret, name="after")
    hub.wait_log(r"debug .*hub: connection from", since=m)


def test_reload_resolves_target_host_off_the_loop(env):
    """target_host is looked up without stalling the tunnels: while a slow
    lookup for the new target runs, streams keep flowing; the new target
    applies once known."""
    p = env.port()
    up = env.upstream(p)
    spec = EdgeSpec("edge-dns", [p])
    slow = os.path.join(env.build, "slowdns.so")
    check(os.path.exists(slow), f"{slow} not built")
    extra = {"LD_PRELOAD": slow, "RI_SLOWDNS_SECS": "8",
             "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    hub = env.hub([spec], extra_env=extra)
    edge = env.edge(hub, spec)
    s = env.connect("127.0.0.2", p)
    echo_check(s, b"before")
    m = hub.mark()
    env.rewrite_hub(hub, target_host="127-0-0-1.slow.ri.test")
    hub.signal(__import__("signal").SIGHUP)
    hub.wait_log(r"SIGHUP: reloading", since=m)
    # the lookup sleeps 8 s: these round trips finish long before it does
    for i in range(20):
        echo_check(s, f"during the lookup {i}".encode())
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"a new stream during the lookup")
    check(hub.count(r"hub: reloaded", since=m) == 0,
          "the reload finished before the slow lookup could have")
    hub.wait_log(r"hub: reloaded .*target_host: 127\.0\.0\.1 -> 127-0-0-1\.slow\.ri\.test",
                 since=m, timeout_s=30)
    echo_check(env.connect("127.0.0.2", p), b"after")


def test_edge_retries_a_port_that_failed_to_reopen(env):
    """A port the edge cannot open (here: taken by another process after a
    bind_address change) is retried with backoff and opens once free."""
    import socket
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-l", [p])
    hub = env.hub([spec])
    edge = env.edge(hub, spec)
    squat = socket.socket()
    squat.bind(("127.0.0.3", p))
    squat.listen(1)
    m = edge.mark()
    _edit(edge.cfg_path, 'bind_address = "127.0.0.2"', 'bind_address = "127.0.0.3"')
    env.reload(edge)
    edge.wait_log(r"error edge: listener: cannot listen on 127\.0\.0\.3 port %d" % p, since=m)
    edge.wait_log(r"will retry the ports that failed in \d+ s", since=m)
    squat.close()
    edge.wait_log(r"listening on 127\.0\.0\.3 port %d\b" % p, since=m, timeout_s=40)
    echo_check(env.connect("127.0.0.3", p), b"retried")


def test_changed_plugin_file_is_loaded_on_reload(env):
    """dlopen of a path already mapped returns the old code: a plugin file
    replaced in place must still take effect on SIGHUP."""
    import shutil
    p = env.port()
    up = env.upstream(p, proxy=False)
    so = env.path("label.so")
    shutil.copy(_tp(env, "tp_label_a.so"), so)
    spec = EdgeSpec("edge-so", [p])
    plugins = ['{ name = "auth_secret"; }', f'{{ name = "tp_label"; file = "{so}"; }}']
    hub = env.hub([spec], plugins=plugins)
    edge = env.edge(hub, spec)
    c = env.connect("127.0.0.2", p)
    c.sendall(b"1")
    up.wait(lambda: len(up.conns) == 1 and len(up.conns[0].head) >= 9, 20, "first header")
    check(bytes(up.conns[0].head[:9]) == b"label=a\r\n", f"got {bytes(up.conns[0].head[:9])!r}")
    # same path, new contents -- replaced the way install(1) and package
    # managers do, by renaming a new file over it (writing into a mapped .so
    # in place would corrupt the running code; the README says so)
    shutil.copy(_tp(env, "tp_label_b.so"), so + ".new")
    os.rename(so + ".new", so)
    m = env.reload(hub)
    hub.wait_log(r"header: tp_label -> tp_label \(new file\)", since=m)
    c2 = env.connect("127.0.0.2", p)
    c2.sendall(b"2")
    up.wait(lambda: len(up.conns) == 2 and len(up.conns[1].head) >= 9, 20, "second header")
    check(bytes(up.conns[1].head[:9]) == b"label=b\r\n",
          f"after replacing the plugin file: {bytes(up.conns[1].head[:9])!r}")
    # the stream opened under the old file is unaffected
    c.sendall(b"more")
    up.wait(lambda: up.conns[0].nbytes >= 14, 20, "bytes on the old stream")


def test_reload_reaches_live_tunnels(env):
    """max_streams, the keepalive and the scheduler apply to tunnels that
    are already up, not only to new ones."""
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-live", [p])
    hub = env.hub([spec], ping_interval_secs=60, ping_timeout_secs=120, max_streams=100)
    peer = env.peer("edge", f"127.0.0.1:{hub.port}", spec.id, spec.secret)
    m = peer.send(f"open 1 {p} ; open 3 {p} ; open 5 {p}")
    env.rewrite_hub(hub, ping_interval_secs=0.3, ping_timeout_secs=60, max_streams=3)
    hm = env.reload(hub)
    # a PING on the existing tunnel at the new interval, long before 60 s
    peer.wait_log(r"< PING stream=0", since=m, timeout_s=10)
    m = peer.send(f"open 7 {p}")  # the fourth: over the new max_streams
    peer.wait_log(r"< RST stream=7 len=\d+ code=10 ", since=m)
    # a scheduler enabled by the reload replaces the built-in one live
    env.rewrite_hub(hub, plugins=['{ name = "auth_secret"; }', '{ name = "header_proxy_v1"; }',
                                  '{ name = "sched_fifo"; }'])
    hm = env.reload(hub)
    hub.wait_log(r"hub: reloaded .*sched: none -> sched_fifo", since=hm)
    m = peer.send("data 1 still-flowing")
    peer.wait_log(r"< DATA stream=1 len=\d+ data=still-flowing", since=m)


def test_edge_reload_reaches_its_live_tunnel(env):
    hp, p = env.ports(2)
    spec = EdgeSpec("edge-ka", [p])
    hub = env.peer("hub", f"127.0.0.1:{hp}", spec.id, spec.secret, "--config", str(p))
    edge = env.edge(hp, spec, ping_interval_secs=60, ping_timeout_secs=120)
    m = hub.mark()
    _edit(edge.cfg_path, "ping_interval_secs = 60;", "ping_interval_secs = 0.3;")
    env.reload(edge)
    hub.wait_log(r"< PING stream=0", since=m, timeout_s=10)
    check(edge.count(r"connected to hub") == 1, "the edge reconnected for a keepalive change")


def test_sighup_applies_timeouts_and_log_level(env):
    """The README's SIGHUP table, for the settings not covered above: the
    log level at once, handshake and connect timeouts for new connections
    and streams, the drain timeout for the next stop."""
    import socket
    import time
    from harness import expect_closed
    p = env.port()
    spec = EdgeSpec("edge-t", [p])
    hub = env.hub([spec], handshake_timeout_secs=60, connect_timeout_secs=60,
                  drain_timeout_secs=60)
    edge = env.edge(hub, spec)
    # an upstream that never accepts (its queue of one is full)
    ls = socket.socket()
    env.closers.append(ls.close)
    ls.bind(("127.0.0.1", p))
    ls.listen(0)
    env.connect("127.0.0.1", p)
    env.rewrite_hub(hub, handshake_timeout_secs=1, connect_timeout_secs=1, drain_timeout_secs=1,
                    log_level="debug")
    m = env.reload(hub)
    # log level: debug lines from now on
    g = env.connect("127.0.0.1", hub.port)  # silent: never starts TLS
    hub.wait_log(r"debug .*hub: connection from", since=m)
    how, secs = expect_closed(g, 10, "a connection that never starts TLS")
    check(secs < 10, f"closed after {secs:.1f} s: the new 1 s handshake timeout did not apply")
    how, secs = env.connect_for_reset("127.0.0.2", p, "a client whose upstream hangs")
    check(how == "reset", f"client saw {how}, expected a reset after the new connect timeout")
    hub.wait_log(r"to edge port %d: upstream \S+: Connection timed out" % p, since=m)
    # drain: a stream stays open; SIGTERM; the new 1 s drain timeout ends it
    ls2 = env.port()
    env.upstream(ls2)
    spec.ports = [p, ls2]
    env.rewrite_hub(hub)
    env.reload(hub)
    edge.wait_log(r"listening on 127\.0\.0\.2 port %d\b" % ls2)
    s = env.connect("127.0.0.2", ls2)
    echo_check(s)
    t0 = time.monotonic()
    hub.signal(__import__("signal").SIGTERM)
    hub.wait_log(r"drain timeout", timeout_s=10)
    check(time.monotonic() - t0 < 10, "the drain did not end after the reloaded 1 s")
