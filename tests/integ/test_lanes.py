"""Lanes: one edge over several TLS connections to its hub (core/PROTOCOL.md,
"Lanes"). Streams spread over the lanes; a lane whose TCP connection dies
resets only its own streams and comes back; a newer edge process (a new
group) replaces the older group whole; against a peer without lanes, one
connection; CONFIG once per edge; SIGHUP with lanes; excess lanes refused."""
import json
import re
import socket
import subprocess
import threading

from harness import T, Ctl, Edge, EdgeSpec, check, echo_check, fail, pump, wait_until


def _edge_status(ctl, edge_id):
    """The hub's status entry for edge_id."""
    return [e for e in ctl("status")["edges"] if e["id"] == edge_id][0]


def _lanes_setup(env, n, ports=1, hub_opts=None, edge_opts=None, upstream_mode="echo"):
    ps = env.ports(ports)
    ups = [env.upstream(p, mode=upstream_mode) for p in ps]
    spec = EdgeSpec("edge-lanes", ps)
    hsock, esock = env.path("hub.sock"), env.path("edge.sock")
    hub = env.hub([spec], control_socket=hsock, **(hub_opts or {}))
    eo = dict(lanes=n, control_socket=esock)
    eo.update(edge_opts or {})
    edge = env.edge(hub, spec, **eo)
    hctl, ectl = Ctl(hsock), Ctl(esock)
    if n > 1:
        wait_until(lambda: _edge_status(hctl, spec.id)["lanes"] == n, T(20),
                   f"{n} lanes up on the hub")
    return hub, edge, spec, ups, hctl, ectl


def _lane_streams(hctl, edge_id):
    """{lane index: active streams} of the edge's live lanes, from the hub."""
    e = _edge_status(hctl, edge_id)
    return {t["lane"]: t["activeStreams"] for t in e["tunnels"] if not t["draining"]}


def test_streams_spread_over_lanes(env):
    hub, edge, spec, ups, hctl, ectl = _lanes_setup(env, 4)
    p = spec.ports[0]
    e = _edge_status(hctl, spec.id)
    # the edge once, with its lane count; every lane in the same group
    check(e["connected"] and e["lanes"] == 4 and len(e["tunnels"]) == 4, f"status: {e}")
    check(sorted(t["lane"] for t in e["tunnels"]) == [0, 1, 2, 3] and
          len({t["group"] for t in e["tunnels"]}) == 1, f"lanes: {e['tunnels']}")
    m = [x for x in hctl("metrics")["edges"] if x["id"] == spec.id][0]
    check(m["connected"] and m["lanes"] == 4, f"metrics: {m}")
    es = ectl("status")
    check(es["connected"] and es["lanesUp"] == 4 and es["hubSpeaksLanes"], f"edge status: {es}")
    # CONFIG once per edge, not per lane
    check(edge.count(r"hub assigns 1 port") == 1,
          f"the edge got CONFIG {edge.count(r'hub assigns 1 port')} times")
    conns = [env.connect("127.0.0.2", p) for _ in range(8)]
    for c in conns:
        echo_check(c, b"z" * 1000)
    per = _lane_streams(hctl, spec.id)
    check(sum(per.values()) == 8 and all(v == 2 for v in per.values()),
          f"8 idle streams over 4 lanes: {per}")
    es = ectl("status")
    check(sorted(x["activeStreams"] for x in es["lanes"]) == [2, 2, 2, 2], f"edge: {es['lanes']}")
    for c in conns:
        c.close()


def _kill_tcp(lport, rport):
    """Kills the TCP connection 127.0.0.1:lport <-> :rport (both ends) with ss -K."""
    r = subprocess.run(["ss", "-K", "-tn", f"( sport = :{lport} and dport = :{rport} ) or "
                        f"( sport = :{rport} and dport = :{lport} )"],
                       capture_output=True, text=True)
    return r.returncode == 0 and str(lport) in r.stdout


def test_lost_lane_resets_only_its_streams(env):
    hub, edge, spec, ups, hctl, ectl = _lanes_setup(env, 2)
    p = spec.ports[0]
    # one long transfer on each lane: a 24 MB upload each, echoed back
    payloads = [bytes([65 + i]) * (24 << 20) for i in range(2)]
    res = {}
    t = threading.Thread(target=lambda: res.update(r=pump(("127.0.0.2", p), payloads,
                                                          timeout_s=120)), daemon=True)
    t.start()
    wait_until(lambda: sorted(_lane_streams(hctl, spec.id).values()) == [1, 1], T(20),
               "one stream on each lane")
    e = _edge_status(hctl, spec.id)
    victim = [x for x in e["tunnels"] if x["lane"] == 1][0]
    vport = int(victim["remote"].rsplit(":", 1)[1])
    m = edge.mark()
    check(_kill_tcp(vport, hub.port), "ss -K found no such connection (needs root and "
          "CONFIG_INET_DIAG_DESTROY)")
    edge.wait_log(r"lane 1 lost .*1 stream on it reset, 1 other lane up", 20, since=m)
    t.join(T(120))
    check(not t.is_alive(), "the transfers did not end")
    r = res["r"]
    ok = [x for x in r if not x["error"] and x["recv_sha"] == x["sent_sha"]]
    bad = [x for x in r if x["error"] or x["recv_sha"] != x["sent_sha"]]
    check(len(ok) == 1 and len(bad) == 1,
          f"one transfer byte-exact, the killed lane's one reset: "
          f"{[(x['error'], x['recv_len']) for x in r]}")
    # the lane comes back, on its own, and takes streams again
    wait_until(lambda: _edge_status(hctl, spec.id)["lanes"] == 2, T(20), "lane 1 back")
    # one edge all along: one connect, one "connected" line, though a lane came and went
    e = _edge_status(hctl, spec.id)
    check(e["connects"] == 1 and hub.count(r"edge edge-lanes connected from") == 1,
          f"the hub counted the edge connected {e['connects']} times, logged it "
          f"{hub.count(r'edge edge-lanes connected from')} times")
    check(edge.count(r"lane 0 lost") == 0, "lane 0 was lost too")
    conns = [env.connect("127.0.0.2", p) for _ in range(4)]
    for c in conns:
        echo_check(c, b"q" * 100)
    per = _lane_streams(hctl, spec.id)
    check(per.get(1, 0) >= 1, f"the lane that came back takes new streams: {per}")


def test_newer_edge_process_replaces_the_older_group(env):
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-grp", [p])
    hsock = env.path("hub.sock")
    hub = env.hub([spec], control_socket=hsock)
    hctl = Ctl(hsock)
    # the older process must not come back during the test: long backoff
    old = env.edge(hub, spec, name="edge-old", bind="127.0.0.2", lanes=3,
                   reconnect_min_secs=120, reconnect_max_secs=120)
    wait_until(lambda: _edge_status(hctl, spec.id)["lanes"] == 3, T(20), "3 old lanes")
    g_old = {t["group"] for t in _edge_status(hctl, spec.id)["tunnels"]}
    hm, om = hub.mark(), old.mark()
    new = env.edge(hub, spec, name="edge-new", bind="127.0.0.3", lanes=3)
    # the first new lane replaces the old group whole (3 lanes, drained)
    hub.wait_log(r"edge edge-grp: new connection from \S+ replaces 3 older ones", since=hm)
    old.wait_log(r"another connection with this edge id replaced ours", since=om)

    def only_new():
        e = _edge_status(hctl, spec.id)
        live = [t for t in e["tunnels"] if not t["draining"]]
        return e["lanes"] == 3 and len(live) == 3 and {t["group"] for t in live}.isdisjoint(g_old)
    wait_until(only_new, T(20), "3 lanes of the new group, none of the old")
    c = env.connect("127.0.0.3", p)
    echo_check(c, b"through the new edge")
    check(old.alive() and new.alive(), "an edge process died")
    check(hub.count(r"lane \d+ reconnected") == 0, "the hub took the new group for the old")


def test_peer_without_lanes_gets_one_connection(env):
    """offer_lanes = false makes a side behave as a peer without the lanes
    capability (an older ri): one connection, as before."""
    for side in ("hub", "edge"):
        p = env.port()
        env.upstream(p)
        spec = EdgeSpec(f"edge-{side}", [p])
        hsock, esock = env.path(f"hub-{side}.sock"), env.path(f"edge-{side}.sock")
        hub_opts = {"offer_lanes": False} if side == "hub" else {}
        edge_opts = {"offer_lanes": False} if side == "edge" else {}
        hub = env.hub([spec], name=f"hub-{side}", control_socket=hsock, **hub_opts)
        edge = env.edge(hub, spec, name=f"e-{side}", lanes=4, control_socket=esock,
                        **edge_opts)
        hctl, ectl = Ctl(hsock), Ctl(esock)
        conns = [env.connect("127.0.0.2", p) for _ in range(4)]
        for c in conns:
            echo_check(c, b"one lane")
        e = _edge_status(hctl, spec.id)
        check(e["connected"] and len(e["tunnels"]) == 1 and "lane" not in e["tunnels"][0] and
              e["activeStreams"] == 4, f"{side} without lanes: hub status {e}")
        es = ectl("status")
        check(es["lanesUp"] == 1 and es["hubSpeaksLanes"] is False, f"edge status: {es}")
        check(hub.count(r"replaces") == 0 and edge.count(r"replaced ours") == 0,
              f"{side} without lanes: connections displaced each other")
        for c in conns:
            c.close()
        edge.stop()
        hub.stop()


def test_config_change_sent_once_with_lanes(env):
    p, q = env.ports(2)
    up = env.upstream(p)
    env.upstream(q)
    hub, edge, spec, ups, hctl, ectl = _lanes_setup(env, 3)
    hm, em = hub.mark(), edge.mark()
    env.reload_with(hub, edges=[EdgeSpec(spec.id, [spec.ports[0], q], secret=spec.secret)])
    edge.wait_log(r"listening on 127\.0\.0\.2 port %d\b" % q, 20, since=em)
    edge.wait_log(r"hub assigns 2 ports", 20, since=em)
    c = env.connect("127.0.0.2", q)
    echo_check(c, b"on the new port")
    # one CONFIG for the change, on one lane: the edge says so once
    check(edge.count(r"hub assigns 2 ports", since=em) == 1,
          f"CONFIG arrived {edge.count(r'hub assigns 2 ports', since=em)} times for one change")
    check(_edge_status(hctl, spec.id)["lanes"] == 3, "lanes lost by the reload")
    # and the lanes that did not carry it serve the new port too
    conns = [env.connect("127.0.0.2", q) for _ in range(6)]
    for c in conns:
        echo_check(c, b"x" * 100)
    per = _lane_streams(hctl, spec.id)
    check(len([v for v in per.values() if v]) == 3, f"streams on the new port, per lane: {per}")


def test_sighup_with_lanes(env):
    hub, edge, spec, ups, hctl, ectl = _lanes_setup(env, 2)
    p = spec.ports[0]
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"before")
    # hub reload: the lanes stay
    env.reload(hub)
    echo_check(c, b"after the hub's reload")
    check(_edge_status(hctl, spec.id)["lanes"] == 2, "the hub's reload cost lanes")
    # edge reload to 4 lanes: two more connect, the open stream stays
    with open(edge.cfg_path) as f:
        cfg = f.read()
    with open(edge.cfg_path, "w") as f:
        f.write(re.sub(r"lanes = 2;", "lanes = 4;", cfg))
    env.reload(edge)
    wait_until(lambda: _edge_status(hctl, spec.id)["lanes"] == 4, T(20), "4 lanes after SIGHUP")
    echo_check(c, b"after the edge's reload")
    # and back to 1: the extra lanes drain (their streams finish) and go
    with open(edge.cfg_path, "w") as f:
        f.write(re.sub(r"lanes = 2;", "lanes = 1;", cfg))
    env.reload(edge)
    wait_until(lambda: _edge_status(hctl, spec.id)["lanes"] == 1, T(20), "1 lane after SIGHUP")
    echo_check(c, b"still through")
    c.close()
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"new stream")
    wait_until(lambda: len(_edge_status(hctl, spec.id)["tunnels"]) == 1, T(20),
               "the extra lanes gone")


def test_excess_lanes_refused(env):
    hub, edge, spec, ups, hctl, ectl = _lanes_setup(env, 2, hub_opts={"max_lanes_per_edge": 2},
                                                    edge_opts={"lanes": 4})
    # lane 0 connects first; of the other three, whichever two come up
    # last are refused (the hub counts lanes, it does not rank indices)
    hub.wait_log(r"edge edge-lanes: lane [123] from \S+ refused: too many lanes "
                 r"\(max_lanes_per_edge 2\)", 20)
    edge.wait_log(r"the hub refused lane [123] \(too many lanes\)", 20)
    rx = re.compile(r"edge: lane (\d): reconnecting in ([0-9.]+) s")
    wait_until(lambda: len({i for i, _ in rx.findall(edge.lines_since(0))}) >= 2, T(20),
               "two refused lanes to schedule their retry")
    check(_edge_status(hctl, spec.id)["lanes"] == 2, "more lanes than the hub allows")
    c = env.connect("127.0.0.2", spec.ports[0])
    echo_check(c, b"the allowed lanes serve")
    es = ectl("status")
    check(es["lanesUp"] == 2 and es["lanesWanted"] == 4, f"edge status: {es}")
    # a refused lane waits the long backoff (it reached READY, so its backoff
    # had been reset: once it came back four times a second)
    delays = [float(d) for _, d in rx.findall(edge.lines_since(0))]
    check(min(delays) >= 20, f"refused lanes retry after {delays} s")


def test_lanes_to_two_hubs_one_killed(env):
    """Further hubs (a token's "H", or edge.hubs): the lanes go round the
    hubs (the same edges on each); a hub killed mid-transfer costs only its
    lanes' streams, and the edge's ports keep serving through the other."""
    import signal
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-2hubs", [p])
    sa, sb = env.path("hub-a.sock"), env.path("hub-b.sock")
    hub_a = env.hub([spec], name="hub-a", control_socket=sa)
    hub_b = env.hub([spec], name="hub-b", control_socket=sb)
    ca, cb = Ctl(sa), Ctl(sb)
    esock = env.path("edge.sock")
    # the further hub comes in the token ("H"); edge.hubs would do the same
    tok = env.run_core(["token", "encode", "--hub-host", "127.0.0.1", "--hub-port",
                        str(hub_a.port), "--edge-id", spec.id, "--secret", spec.secret,
                        "--also-hub", f"127.0.0.1:{hub_b.port}"]).stdout.strip()
    env.secrets.add(tok)
    edge = env.edge(hub_a, spec, token=tok, control_socket=esock)
    wait_until(lambda: _edge_status(ca, spec.id)["lanes"] == 1 and
               _edge_status(cb, spec.id)["lanes"] == 1, T(20), "one lane on each hub")
    es = Ctl(esock)("status")
    check(es["lanesUp"] == 2 and sorted(x["hub"] for x in es["lanes"]) ==
          sorted([f"127.0.0.1:{hub_a.port}", f"127.0.0.1:{hub_b.port}"]), f"edge: {es}")
    payloads = [bytes([70 + i]) * (32 << 20) for i in range(2)]
    res = {}
    t = threading.Thread(target=lambda: res.update(r=pump(("127.0.0.2", p), payloads,
                                                          timeout_s=120)), daemon=True)
    t.start()
    wait_until(lambda: _edge_status(ca, spec.id)["activeStreams"] == 1 and
               _edge_status(cb, spec.id)["activeStreams"] == 1, T(20),
               "one stream through each hub")
    m = edge.mark()
    hub_a.signal(signal.SIGKILL)
    edge.wait_log(r"lane 0 lost .*1 stream on it reset, 1 other lane up", 20, since=m)
    t.join(T(120))
    check(not t.is_alive(), "the transfers did not end")
    r = res["r"]
    ok = [x for x in r if not x["error"] and x["recv_sha"] == x["sent_sha"]]
    check(len(ok) == 1, f"the transfer through the live hub is byte-exact: "
                        f"{[(x['error'], x['recv_len']) for x in r]}")
    # the port keeps serving, through hub B
    for _ in range(3):
        c = env.connect("127.0.0.2", p)
        echo_check(c, b"through the hub that is up")
        c.close()
    check(Ctl(esock)("status")["connected"] is True, "the edge says it is not connected")


def test_lanes_spread_over_a_names_addresses(env):
    """A hub name with several addresses (DNS round robin over hubs, here
    two hubs on 127.0.0.1 and 127.0.0.3, same port, one name through the
    slowdns shim): lane k starts at the k-th address, so each hub gets a
    lane; the first hub killed costs only its lane, and the lane that lost
    it reconnects through the name's other address."""
    import os
    import signal
    slow = os.path.join(env.build, "slowdns.so")
    check(os.path.exists(slow), f"{slow} not built")
    extra = {"LD_PRELOAD": slow, "RI_SLOWDNS_SECS": "0",
             "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-rr", [p])
    hp = env.port()
    sa, sb = env.path("hub-a.sock"), env.path("hub-b.sock")
    hub_a = env.hub([spec], port=hp, name="hub-a", control_socket=sa, listen_host="127.0.0.1")
    hub_b = env.hub([spec], port=hp, name="hub-b", control_socket=sb, listen_host="127.0.0.3")
    ca, cb = Ctl(sa), Ctl(sb)
    esock = env.path("edge.sock")
    name = "127-0-0-1x127-0-0-3.slow.ri.test"
    cfg = env.write("edge-rr.cfg", env.edge_config(hp, spec.id, spec.secret, bind="127.0.0.2",
                                                   hub_host=name, lanes=2,
                                                   control_socket=esock))
    edge = env.start_core("edge-rr", cfg, cls=Edge, extra_env=extra)
    edge.spec, edge.bind, edge.cfg_path = spec, "127.0.0.2", cfg
    env.wait_edge_ready(edge, spec.ports)
    wait_until(lambda: _edge_status(ca, spec.id)["lanes"] == 1 and
               _edge_status(cb, spec.id)["lanes"] == 1, T(20), "one lane on each address")
    for _ in range(4):
        c = env.connect("127.0.0.2", p)
        echo_check(c, b"through either hub")
        c.close()
    m = edge.mark()
    hub_a.signal(signal.SIGKILL)
    edge.wait_log(r"lane \d lost", 20, since=m)
    # the lane that lost 127.0.0.1 comes back through 127.0.0.3: both lanes on hub B
    wait_until(lambda: _edge_status(cb, spec.id)["lanes"] == 2, T(20),
               "the lost lane reconnected to the name's other address")
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"after the first address died")
    c.close()
    check(hub_b.alive(), "hub B died")


def test_one_hub_refusing_keeps_the_ports_served_by_another(env):
    """With two hubs, one that removes the edge from its config refuses
    the edge's lane there (GOAWAY "removed", then its handshakes); the other
    hub still vouches for the edge, so its ports stay open and serve."""
    import signal
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-keep", [p])
    other = EdgeSpec("edge-other", [env.port()])
    sa, sb = env.path("hub-a.sock"), env.path("hub-b.sock")
    hub_a = env.hub([spec], name="hub-a", control_socket=sa)
    hub_b = env.hub([spec], name="hub-b", control_socket=sb)
    ca, cb = Ctl(sa), Ctl(sb)
    edge = env.edge(hub_a, spec, hubs=[f"127.0.0.1:{hub_b.port}"])
    wait_until(lambda: _edge_status(ca, spec.id)["lanes"] == 1 and
               _edge_status(cb, spec.id)["lanes"] == 1, T(20), "one lane on each hub")
    m, mb = edge.mark(), hub_b.mark()
    env.write("hub-b.cfg", env.hub_config(hub_b.port, [other], control_socket=sb))
    hub_b.signal(signal.SIGHUP)
    # the GOAWAY, then the lane's retry refused at its handshake
    hub_b.wait_log(r"unknown edge id 'edge-keep'", 20, since=mb)
    edge.wait_log(r"edge: lane 1: reconnecting in [0-9.]+ s", 20, since=m, count=2)
    check(edge.count(r"closing its public ports", since=m) == 0,
          "one hub's refusal closed the ports the other hub still serves")
    for _ in range(3):
        c = env.connect("127.0.0.2", p)
        echo_check(c, b"still served through hub A")
        c.close()
    check(hub_a.alive() and hub_b.alive() and edge.alive(), "a process died")
