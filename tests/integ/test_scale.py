"""Many edges on one hub, one edge at its descriptor limit (issue 10,
section 4), at the suite's size: 100 simulated edges (build/ri-edgesim, the
real tunnel code) connect and carry a stream each, and all come back after
kill -9 and a restart of the hub; an edge under a small open-file limit
warns once as it nears it, refuses the clients past it with a reset
without spinning, and serves again once clients leave. Full size:
tests/bench/scale.py (make bench-scale)."""
import re
import time

from harness import EdgeSpec, Hub, check, timeout
from fleet import (NEAR_LIMIT, REFUSING, cpu_secs, edge_under_nofile, fill_until_refused,
                   many_edges, served_again, try_client)


@timeout(240)
def test_100_edges_connect_and_come_back_after_hub_kill(env):
    r = many_edges(env, 100, connect_timeout_s=120, restart_timeout_s=120)
    env.debug(f"figures: { {k: v for k, v in r.items() if k != 'hub'} }")
    check(r["streams_ok"] >= 200, f"{r['streams_ok']} echoes for 100 edges in two rounds")
    check(r["handshakes"] >= 200, f"{r['handshakes']} handshakes for 100 edges in two rounds")
    hub = r["hub"]
    check(hub.alive(), "the restarted hub died")
    check(hub.count(r"edge sim-\d+: .*(wrong secret|unknown edge id)") == 0,
          "the hub refused a simulated edge's proof")


NOFILE = 256


@timeout(180)
def test_edge_at_descriptor_limit_refuses_with_reset_and_recovers(env):
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-fd", [p])
    hub = env.hub([spec])
    edge = edge_under_nofile(env, hub.port, spec, NOFILE)
    # more than the limit could ever allow
    held, refused = fill_until_refused(env, "127.0.0.2", p, NOFILE + 10)
    check(refused, f"{len(held)} streams held under a limit of {NOFILE}")
    env.debug(f"{len(held)} streams held at nofile {NOFILE}")
    check(len(held) >= NOFILE * 3 // 4, f"only {len(held)} streams held under a limit of "
                                         f"{NOFILE} before the first refusal")
    edge.wait_log(NEAR_LIMIT)
    m = re.search(NEAR_LIMIT, edge.log())
    check(int(m.group(2)) == NOFILE, f"the warning names limit {m.group(2)}, not {NOFILE}")
    edge.wait_log(REFUSING)
    # at the limit: every further client is refused, the edge stays quiet
    m0, c0, t0 = edge.mark(), cpu_secs(edge.pid), time.monotonic()
    for i in range(30):
        c = try_client(env, "127.0.0.2", p, b"one too many\n")
        check(c is None, f"client {i} past the limit was served")
    time.sleep(1.0)
    cpu, wall = cpu_secs(edge.pid) - c0, time.monotonic() - t0
    check(cpu < 0.5 * wall, f"the edge used {cpu:.2f} s of CPU in {wall:.2f} s at its limit")
    check(edge.alive(), "the edge died at its descriptor limit")
    refusals = edge.count(REFUSING, since=m0)
    check(refusals <= wall / 5 + 2, f"{refusals} refusal lines in {wall:.1f} s (rate-limited "
                                    f"lines expected)")
    # the held streams still work
    for c in held[:5]:
        c.sendall(b"still here\n")
        got = b""
        while len(got) < 11:
            b = c.recv(64)
            check(b, "a held stream closed at the limit")
            got += b
    # clients leave: new ones are served again
    for c in held[:40]:
        c.close()
    held = held[40:]
    served_again(env, "127.0.0.2", p)
    for i in range(10):
        c = try_client(env, "127.0.0.2", p, b"served again %d\n" % i)
        check(c is not None, f"client {i} refused after clients left")
        c.close()
    check(edge.count(NEAR_LIMIT) == 1,
          f"{edge.count(NEAR_LIMIT)} near-limit warnings (one expected)")
    for c in held:
        c.close()
    check(edge.alive(), "the edge died")


@timeout(180)
def test_hub_at_descriptor_limit_refuses_opens_with_code_10(env):
    import json
    p = env.port()
    env.upstream(p)
    spec = EdgeSpec("edge-hubfd", [p])
    hub_port = env.port()
    sock = env.path("hub.sock")
    cfg = env.write("hub.cfg", env.hub_config(hub_port, [spec], control_socket=sock))
    hub = env.start_core("hub", cfg, cls=Hub, wrap=["prlimit", f"--nofile={NOFILE}"])
    hub.port = hub_port
    hub.wait_log(r"hub: listening on \S+:%d " % hub_port)
    edge = env.edge(hub, spec, args=["-d"])  # debug: the edge logs each RST it gets
    held, refused = fill_until_refused(env, "127.0.0.2", p, NOFILE + 10)
    check(refused, f"{len(held)} streams held under a hub limit of {NOFILE}")
    check(len(held) >= NOFILE * 3 // 4, f"only {len(held)} streams before the first refusal")
    hub.wait_log(r"hub: near the descriptor limit: \d+ of %d descriptors in use" % NOFILE)
    hub.wait_log(r"hub: refusing new streams with a reset")
    # what the edge got for the refused stream: RST code 10 and its reason
    edge.wait_log(r"stream \d+ reset by peer: too many streams: descriptor limit")
    r = env.run_core(["ctl", "--json", "-s", sock, "metrics"])
    check(r.returncode == 0, f"ctl metrics: {r.stdout}{r.stderr}")
    mt = json.loads(r.stdout)
    check(mt.get("streamsRefusedFdLimit", 0) >= 1 and mt.get("streamsRefused", 0) >= 1,
          f"metrics do not count the refusal: {r.stdout}")
    for c in held[:40]:
        c.close()
    served_again(env, "127.0.0.2", p)
    check(hub.alive() and edge.alive(), "a process died")
    for c in held[40:]:
        c.close()
