"""Authentication and edge identity: wrong secret, unknown id, a second
connection for the same id."""

import re

from harness import EdgeSpec, check, echo_check, new_secret


def test_wrong_secret(env):
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-auth", [p])
    hub = env.hub([spec])
    wrong = new_secret()
    edge = env.edge(hub, spec, secret=wrong, wait=False)
    env.secrets.add(wrong)  # neither secret may appear in any log (checked at close)
    # refused on both sides, and it stays refused on the edge's retries
    edge.wait_log(r"(refused|authentication failed)", 20)
    edge.wait_log(r"(refused|authentication failed)", 20, count=2)
    hub.wait_log(r"edge-auth.*wrong secret|wrong secret.*edge-auth", 20)
    hl, el = hub.log(), edge.log()
    check("wrong secret for edge 'edge-auth'" in hl, "hub log does not say 'wrong secret' "
          "for the edge id")
    check(edge.count(r"listening on") == 0 and edge.count(r"connected to hub") == 0,
          "an edge with a wrong secret got connected or opened a port")
    check(hub.count(r"edge edge-auth connected") == 0, "hub let the edge in")
    env.expect_refused("127.0.0.2", p, "the port of an unauthenticated edge")
    for s in (spec.secret, wrong):
        check(s not in hl and s not in el, "a secret appears in a log")


def test_unknown_edge_id(env):
    p = env.port()
    spec = EdgeSpec("edge-known", [p])
    hub = env.hub([spec])
    edge = env.edge(hub, spec, edge_id="edge-stranger", wait=False)
    # the peer learns only that authentication failed; the hub's log says why
    edge.wait_log(r"peer refused us: authentication failed", 20)
    hub.wait_log(r"unknown edge id 'edge-stranger'", 20)
    check(edge.count(r"unknown edge|wrong secret|edge-stranger'") == 0,
          "the hub told an unknown client whether the id exists")
    check(edge.count(r"listening on") == 0, "an unknown edge opened a port")
    env.expect_refused("127.0.0.2", p)


def _hello_hex(edge_id, nonce=b"\x01" * 32):
    b = b"RITN" + (1).to_bytes(2, "big") + bytes([len(edge_id)]) + edge_id.encode()
    b += bytes([len("auth_secret")]) + b"auth_secret" + len(nonce).to_bytes(2, "big") + nonce
    return b.hex()


def test_unknown_id_and_wrong_secret_look_alike_on_the_wire(env):
    """A client that names an edge id and sends a wrong proof sees the same
    frames whether the id exists or not -- a challenge, then one generic
    refusal -- so it cannot probe for ids. Only the hub's log says which."""
    a = EdgeSpec("edge-known", [env.port()])
    hub = env.hub([a])
    addr = f"127.0.0.1:{hub.port}"
    seen = {}
    for eid in ("edge-known", "edge-ghost"):
        # ri-peer --raw: TLS only; the test speaks HELLO and a (wrong) proof itself
        peer = env.peer("edge", addr, eid, a.secret, "--raw", name=f"peer-{eid}")
        peer.send(f"frame 0x01 0 {_hello_hex(eid)}")
        peer.wait_log(r"< AUTH stream=0 len=32\b", timeout_s=10)  # the hub's challenge
        peer.send("frame 0x02 0 " + "00" * 32)                    # a proof that is wrong
        peer.wait_log(r"CLOSED ", timeout_s=10, allow_exit=True)
        seen[eid] = re.findall(r"(?m)^< .*$", peer.log())
    check(seen["edge-known"] == seen["edge-ghost"],
          f"a known and an unknown id get different frames: {seen}")
    check(any("REFUSE stream=0" in f and "code=3 reason=authentication failed" in f
              for f in seen["edge-ghost"]), f"no generic refusal: {seen['edge-ghost']}")
    hub.wait_log(r"wrong secret for edge 'edge-known'")
    hub.wait_log(r"unknown edge id 'edge-ghost'")


def test_duplicate_edge_id_newer_replaces_older(env):
    p = env.port()
    up = env.upstream(p)
    spec = EdgeSpec("edge-dup", [p])
    hub = env.hub([spec])
    # the older edge must not come back during the test: long backoff
    old = env.edge(hub, spec, name="edge-old", bind="127.0.0.2",
                   reconnect_min_secs=120, reconnect_max_secs=120)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"through the old edge")
    c.close()
    hm, om = hub.mark(), old.mark()
    new = env.edge(hub, spec, name="edge-new", bind="127.0.0.3")
    hub.wait_log(r"edge edge-dup: new connection from \S+ replaces the one from", since=hm)
    old.wait_log(r"another connection with this edge id replaced ours", since=om)
    # the old tunnel drained (no stream was open) and closed; the replaced
    # edge keeps its port and retries later (its backoff: 120 s here)
    hub.wait_log(r"tunnel \S+ edge edge-dup: closed", since=hm)
    c = env.connect("127.0.0.3", p)
    cport = c.getsockname()[1]
    echo_check(c, b"through the new edge")
    c.close()
    up.wait_conns(2)
    want = f"PROXY TCP4 127.0.0.1 127.0.0.3 {cport} {p}\r\n".encode()
    check(want in up.proxy_lines(), f"no stream through the new edge upstream: "
                                    f"{up.proxy_lines()}")
    check(old.alive() and new.alive(), "an edge process died")
