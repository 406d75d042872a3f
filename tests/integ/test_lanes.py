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

from harness import T, EdgeSpec, check, echo_check, fail, pump, wait_until


class Ctl:
    """One request per connection to a control socket."""

    def __init__(self, env, path):
        self.env, self.path = env, path

    def __call__(self, cmd, **args):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(T(20))
        try:
            s.connect(self.path)
            s.sendall((json.dumps(dict(cmd=cmd, **args)) + "\n").encode())
            buf = b""
            while b"\n" not in buf:
                d = s.recv(65536)
                if not d:
                    fail(f"control socket {self.path} closed instead of answering")
                buf += d
        finally:
            s.close()
        a = json.loads(buf.split(b"\n", 1)[0])
        check(a.get("ok") is True, f"{cmd}: {a}")
        return a


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
    hctl, ectl = Ctl(env, hsock), Ctl(env, esock)
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
    check(edge.count(r"lane 0 lost") == 0, "lane 0 was lost too")
    conns = [env.connect("127.0.0.2", p) for _ in range(4)]
    for c in conns:
        echo_check(c, b"q" * 100)
    per = _lane_streams(hctl, spec.id)
    check(per.get(1, 0) >= 1, f"the lane that came back takes new streams: {per}")
