"""Logs an operator can act on: the access log (one line per stream, reopened
on reload for log rotation), RFC 3339 timestamps with the zone offset, quiet
TCP health checks, lost streams and upstream failures at warn with who and
where."""
import os
import re
import signal
import socket

from harness import EdgeSpec, check, echo_check, expect_closed, read_proxy_line, wait_until

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def _lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _fields(line):
    """key=value pairs of an access line (a quoted value may hold spaces)."""
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))


def test_access_log_one_line_per_stream(env):
    """The hub writes one line per stream to its access_log file (edge,
    client, edge port, target, bytes each way, duration, how it ended); the
    edge writes its lines into its main log ("-"); a reset stream says why;
    after the file is moved away, a reload starts a new one (logrotate)."""
    p, dead = env.ports(2)
    env.upstream(p)
    alog = os.path.join(env.dir, "access.log")
    hub, edge, spec = env.pair([p, dead], hub_opts={"top": {"access_log": alog}},
                               edge_opts={"top": {"access_log": "-"}})
    c = env.connect("127.0.0.2", p)
    cport = c.getsockname()[1]
    echo_check(c, b"x" * 1000)
    c.close()
    wait_until(lambda: len(_lines(alog)) >= 1, 20, "the hub's access line")
    line = _lines(alog)[0]
    check(re.match(STAMP + " ", line), f"access line does not start with a timestamp: {line!r}")
    f = _fields(line)
    want = {"edge": "edge-1", "client": f"127.0.0.1:{cport}", "port": str(p),
            "target": f"127.0.0.1:{p}", "up": "1000", "down": "1000", "class": "normal",
            "end": "ok"}
    for k, v in want.items():
        check(f.get(k) == v, f"access line: {k}={f.get(k)!r}, want {v!r}: {line!r}")
    check(float(f["duration"]) >= 0, f"duration {f['duration']!r}")
    m = edge.wait_log(rf"access: edge=edge-1 stream=\d+ client=127\.0\.0\.1:{cport} port={p} "
                      r"target=- up=1000 down=1000 ")
    check(m, "the edge's access line")

    # a stream whose upstream refuses: a reset line with the reason
    # the reset may even come before connect() returns (seen under SAN=1)
    env.connect_for_reset("127.0.0.2", dead, "a client whose upstream refuses")
    wait_until(lambda: len(_lines(alog)) >= 2, 20, "the refused stream's access line")
    f = _fields(_lines(alog)[1])
    check(f.get("end") == "reset" and "refused" in f.get("reason", ""),
          f"refused stream's line: {_lines(alog)[1]!r}")
    edge.wait_log(rf"access: .* port={dead} .*end=reset reason=\".*refused")

    # rotation: move the file away, reload, the next line goes to a new file
    os.rename(alog, alog + ".1")
    env.reload(hub)
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    wait_until(lambda: len(_lines(alog)) == 1, 20, "a line in the reopened access log")
    check(len(_lines(alog + ".1")) == 2, "the rotated file grew after the reload")


def test_access_log_that_cannot_open_is_refused(env):
    """-t and the start refuse an access_log that cannot be written; a reload
    to such a path keeps the old one and says why."""
    p = env.port()
    env.upstream(p)
    bad = os.path.join(env.dir, "no-such-dir", "access.log")
    spec = EdgeSpec("edge-1", [p])
    cfg = env.write("bad-hub.cfg", env.hub_config(env.port(), [spec], top={"access_log": bad}))
    r = env.run_core(["-t", "-c", cfg])
    check(r.returncode == 1 and "access_log" in r.stderr and "No such file" in r.stderr,
          f"-t with an unwritable access_log: rc {r.returncode}: {r.stderr!r}")
    alog = os.path.join(env.dir, "access.log")
    hub = env.hub([spec], top={"access_log": alog})
    env.edge(hub, spec)
    m = env.reload_with(hub, top={"access_log": bad})
    hub.wait_log(r"reload: access_log .*No such file.*keep going", since=m)
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    wait_until(lambda: len(_lines(alog)) == 1, 20, "the line still in the old access log")


def test_timestamps_are_rfc3339_with_offset(env):
    """Every log line starts with an RFC 3339 time carrying the zone offset,
    so edges in several time zones line up."""
    spec = EdgeSpec("edge-1", [env.port()])
    hub = env.hub([spec], extra_env={"TZ": "Asia/Kolkata"})
    lines = [ln for ln in hub.log().splitlines() if ln.strip()]
    check(lines, "the hub logged nothing")
    for ln in lines:
        check(re.match(STAMP + r" (info|warn|error|debug) ", ln), f"not RFC 3339: {ln!r}")
        check(ln[23:29] == "+05:30", f"not the offset of TZ=Asia/Kolkata: {ln!r}")


def test_tcp_health_checks_are_quiet(env):
    """A plain TCP connect to the hub port that closes without a byte (a load
    balancer's health check) is not a warning; garbage still is."""
    hub, edge, spec = env.pair([env.port()])
    m = hub.mark()
    for _ in range(5):
        socket.create_connection(("127.0.0.1", hub.port)).close()
    g = socket.create_connection(("127.0.0.1", hub.port))
    g.sendall(b"GET / HTTP/1.0\r\n\r\n")
    hub.wait_log(r"warn .*TLS handshake failed", since=m)
    g.close()
    check(hub.count(r"non-properly terminated", since=m) == 0,
          "a TCP health check was logged as a TLS failure")
    check(hub.count(r"warn ", since=m) == 1, "more than the one warning for the garbage")


def test_lost_edge_is_a_warning_with_streams_lost(env):
    """An edge killed with open streams: the hub warns and says how many
    streams were lost."""
    p = env.port()
    ls = env.listen(p)
    hub, edge, spec = env.pair([p])
    cs = []
    for _ in range(2):
        c = env.connect("127.0.0.2", p)
        c.sendall(b"x")
        read_proxy_line(env.accept(ls))
        cs.append(c)
    m = hub.mark()
    edge.signal(signal.SIGKILL)
    hub.wait_log(r"warn  tunnel .* edge edge-1: closed: .*\(2 open streams lost\)", since=m)


def test_upstream_failure_names_edge_client_and_target(env):
    """An upstream that refuses: a warning naming the edge, the client, the
    edge port and the target address."""
    p = env.port()  # nobody listens on 127.0.0.1:p
    hub, edge, spec = env.pair([p])
    c = env.connect("127.0.0.2", p)
    cport = c.getsockname()[1]
    try:
        c.sendall(b"x")
        expect_closed(c, 20, "a client whose upstream refuses")
    except (ConnectionResetError, BrokenPipeError):
        pass  # reset already
    hub.wait_log(rf"warn  tunnel .* edge edge-1: stream \d+ from 127\.0\.0\.1:{cport} to edge "
                 rf"port {p}: upstream 127\.0\.0\.1:{p}: Connection refused")


def test_port_that_cannot_open_is_reported_to_the_hub(env):
    """A public port the edge cannot open (here: in use) is an error on the
    edge and, through a PORTS frame, on the hub; the edge retries, and once
    the port opens the hub hears that too and clients get through."""
    p, q = env.ports(2)
    env.upstream(p)
    env.upstream(q)
    blocker = socket.socket()
    blocker.bind(("127.0.0.2", p))
    blocker.listen(1)
    hub, edge, spec = env.pair([p, q], edge_opts={"wait": False})
    edge.wait_log(rf"error .*cannot listen on 127\.0\.0\.2 port {p}: Address already in use")
    hub.wait_log(rf"error .*edge edge-1: cannot open 1 of its 2 ports \({p}\): .*"
                 r"Address already in use; the edge retries")
    m = hub.mark()
    blocker.close()
    edge.wait_log(rf"listening on 127\.0\.0\.2 port {p}")
    hub.wait_log(r"edge edge-1: all 2 ports open now", since=m)
    c = env.connect("127.0.0.2", p)
    echo_check(c)


def test_reload_says_what_changed(env):
    """A reload's log names what changed: the header plugin turned off, the
    target, each edge added, removed or given other ports (connected or
    not) -- not just "reloaded"."""
    p, q, r = env.ports(3)
    one, two = EdgeSpec("edge-1", [p]), EdgeSpec("edge-2", [q])
    hub = env.hub([one, two])
    env.edge(hub, one)
    three = EdgeSpec("edge-3", [r])
    one.ports = [p, r]
    m = env.reload_with(hub, edges=[one, three], header=False, target_host="localhost")
    hub.wait_log(r"hub: reloaded .*header: header_proxy_v1 -> none", since=m)
    hub.wait_log(r"hub: reloaded .*target_host: 127\.0\.0\.1 -> localhost", since=m)
    hub.wait_log(rf"hub: reload: edge edge-1: ports now {min(p, r)},{max(p, r)}", since=m)
    hub.wait_log(r"hub: reload: edge edge-2 removed", since=m)
    hub.wait_log(rf"hub: reload: edge edge-3 added \(ports {r}\)", since=m)


def test_log_format_json(env):
    """log_format = "json": every line the hub writes is one JSON object
    {"time": RFC 3339, "level", "msg"}, from the start; a reload to "text"
    turns the lines back into text at once, and back to "json" again."""
    import json
    p = env.port()
    env.upstream(p)
    hub, edge, spec = env.pair([p], hub_opts={"top": {"log_format": "json"}})
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    hub.wait_log(r'"msg":"edge edge-1 connected from ')
    lines = [l for l in hub.log().splitlines() if l.strip()]
    check(len(lines) >= 2, f"hub log: {lines!r}")
    for l in lines:
        try:
            o = json.loads(l)
        except ValueError:
            check(False, f"not a JSON line: {l!r}")
        check(list(o) == ["time", "level", "msg"], f"keys {list(o)} in {l!r}")
        check(re.fullmatch(STAMP, o["time"]), f"time {o['time']!r}")
        check(o["level"] in ("error", "warn", "info", "debug"), f"level in {l!r}")
    check(any(json.loads(l)["msg"].startswith("hub: listening on ") for l in lines),
          "no listening line among the JSON lines")

    # back to the default, text: the reload's own outcome line is the first
    # in the new format (the "reloading" line before it is still JSON)
    m = env.reload_with(hub, top={})
    after = hub.lines_since(m).splitlines()
    first = next((i for i, l in enumerate(after) if "hub: reloaded " in l), None)
    check(first is not None and re.match(STAMP + r" info +hub: reloaded ", after[first]),
          f"no text reload line: {after!r}")
    c = env.connect("127.0.0.2", p)
    echo_check(c)
    c.close()
    hub.wait_log(r"hub: reloaded ", since=m)
    check(all(not l.startswith("{") for l in hub.lines_since(m).splitlines()[first:]),
          f"JSON lines after the reload to text: {hub.lines_since(m)!r}")
    m = env.reload_with(hub, top={"log_format": "json"})
    hub.wait_log(r'(?m)^\{"time":"[^"]+","level":"info","msg":"hub: reloaded ', since=m)
