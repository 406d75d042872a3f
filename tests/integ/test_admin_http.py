"""admin_http: Prometheus /metrics (checked by promtool), /status.json,
/ready, 404, and the status page rendered by headless Chromium."""
import json
import os
import re
import shutil
import socket
import subprocess
import time

from harness import T, EdgeSpec, check, echo_check, fail, wait_until
from promhttp import admin_plugin as _plugin, http_get as _get, promtool, samples as _samples
from promhttp import metrics, wait_http as _wait_http


def _pair(env):
    p = env.port()
    hp, ep = env.ports(2, hosts=("127.0.0.1",))
    env.upstream(p)
    spec = EdgeSpec("edge-adm", [p])
    hub = env.hub([spec], plugins=['{ name = "auth_secret"; }', '{ name = "header_proxy_v1"; }',
                                   _plugin(hp)])
    edge = env.edge(hub, spec, plugins_extra=[_plugin(ep)])
    _wait_http(hp)
    _wait_http(ep)
    return hub, edge, spec, p, hp, ep


def test_metrics_status_ready_and_404(env):
    hub, edge, spec, p, hp, ep = _pair(env)
    code, text = _get(hp, "/metrics")
    check(code == 200, f"/metrics: {code} {text}")
    promtool(text)
    m = _samples(text)
    check(m.get("ri_edges_connected") == 1 and m.get('ri_edge_connected{edge="edge-adm"}') == 1,
          f"hub metrics: {text}")
    before = m.get('ri_edge_streams_opened_total{edge="edge-adm"}')
    check(before is not None and m.get("ri_streams_opened_total") is not None, text)

    c = env.connect("127.0.0.2", p)
    echo_check(c, b"y" * 4000)
    m = _samples(_get(hp, "/metrics")[1])
    check(m['ri_edge_streams_opened_total{edge="edge-adm"}'] == before + 1 and
          m["ri_streams_active"] == 1 and m['ri_edge_upstream_bytes_total{edge="edge-adm"}'] >= 4000,
          f"after a stream: {m}")
    c.close()
    wait_until(lambda: _samples(_get(hp, "/metrics")[1]).get(
        'ri_edge_streams_closed_total{edge="edge-adm"}', 0) >= 1, T(10), "stream closed counted")

    code, etext = _get(ep, "/metrics")
    check(code == 200, f"edge /metrics: {code}")
    promtool(etext)
    em = _samples(etext)
    check(em["ri_edges_connected"] == 1 and em["ri_streams_opened_total"] >= 1 and
          em["ri_reconnects_total"] == 0 and em["ri_ports_failed"] == 0 and
          em['ri_info{role="edge"}'] == 1, f"edge metrics: {etext}")

    code, body = _get(hp, "/status.json")
    st = json.loads(body)
    check(code == 200 and [e["id"] for e in st["status"]["edges"]] == ["edge-adm"] and
          st["status"]["edges"][0]["connected"] and st["metrics"]["ready"], f"status.json: {body}")
    code, body = _get(ep, "/status.json")
    check(code == 200 and json.loads(body)["status"]["edgeId"] == "edge-adm", body)

    check(_get(hp, "/ready")[0] == 200, "hub /ready")
    check(_get(ep, "/ready")[0] == 200, "edge /ready")
    for path in ("/nope", "/metrics/x", "/index.html"):
        check(_get(hp, path)[0] == 404, f"{path} is not 404")


def test_ready_follows_the_tunnel(env):
    hub_port = env.port(hosts=("127.0.0.1",))
    ep = env.port(hosts=("127.0.0.1",))
    p = env.port()
    spec = EdgeSpec("edge-rdy", [p])
    # no hub yet: the edge keeps trying, not ready
    edge = env.edge(hub_port, spec, wait=False, plugins_extra=[_plugin(ep)])
    _wait_http(ep)
    code, body = _get(ep, "/ready")
    check(code == 503, f"/ready without a hub: {code} {body}")
    m = _samples(_get(ep, "/metrics")[1])
    check(m["ri_ready"] == 0 and m["ri_edges_connected"] == 0, f"metrics: {m}")
    hub = env.hub([spec], port=hub_port)
    env.wait_edge_ready(edge, [p], timeout_s=T(30))
    wait_until(lambda: _get(ep, "/ready")[0] == 200, T(10), "/ready 200 once connected")


def test_status_page_renders_in_chromium(env):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        fail("chromium not installed (apt-get install chromium)")
    hub, edge, spec, p, hp, ep = _pair(env)
    code, html = _get(hp, "/")
    check(code == 200 and "<canvas" not in html and "http://" not in html and
          "https://" not in html and "<script>" in html, "page is self-contained")
    prof = env.path("chromium-profile")
    shot = env.path("status-page.png")
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", f"--user-data-dir={prof}", "--enable-logging=stderr",
            "--v=0", "--virtual-time-budget=4000"]
    url = f"http://127.0.0.1:{hp}/"
    r = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=T(90))
    check(r.returncode == 0, f"chromium --dump-dom: {r.returncode} {r.stderr[-3000:]}")
    dom = r.stdout
    check(re.search(r'<tr class="edge"><td>edge-adm</td><td class="up">connected</td>', dom),
          f"rendered page shows the connected edge: {dom[-3000:]}")
    check('id="g-edge-adm"' in dom, "a throughput canvas for the edge")
    bad = [ln for ln in r.stderr.splitlines()
           if "Uncaught" in ln or ("CONSOLE" in ln and ("error" in ln.lower()))]
    check(not bad, f"console errors: {bad}")
    r = subprocess.run(base + ["--window-size=1000,800", f"--screenshot={shot}", url],
                       capture_output=True, text=True, timeout=T(90))
    check(r.returncode == 0 and os.path.getsize(shot) > 1000,
          f"chromium --screenshot: {r.returncode} {r.stderr[-2000:]}")
    bad = [ln for ln in r.stderr.splitlines() if "Uncaught" in ln]
    check(not bad, f"console errors: {bad}")


def test_reload_keeps_serving_and_bad_settings_refused(env):
    """SIGHUP: the new instance takes the port over from the old one (the
    edge's counters are the core's, so they carry on); bad settings are a
    config error naming the plugin."""
    hub, edge, spec, p, hp, ep = _pair(env)
    for proc, port in ((hub, hp), (edge, ep)):
        m = env.reload(proc)
        wait_until(lambda: proc.count(r"admin_http: serving", since=m) >= 1, T(10),
                   "admin_http serving again after the reload")
        check(_get(port, "/ready")[0] == 200, "/ready after the reload")
        check(proc.count(r"admin_http: cannot listen", since=m) == 0, "no warning on a reload")
        check(_samples(_get(port, "/metrics")[1])["ri_edges_connected"] == 1, "metrics")
    bad = env.write("bad.cfg", env.hub_config(env.port(), [spec], plugins=[
        '{ name = "auth_secret"; }', '{ name = "admin_http"; listen = "localhost"; }']))
    r = env.run_core(["-c", bad, "-t"])
    check(r.returncode != 0 and "admin_http" in r.stderr + r.stdout and
          "listen" in r.stderr + r.stdout, f"bad listen: {r.returncode} {r.stdout}{r.stderr}")


def test_metrics_move_with_traffic_stalls_and_stun(env):
    """The families behind the counters the data path keeps: a download
    the client does not read at first stalls on the edge's window (the hub
    counts a window stall); classify_elephant on the hub makes it
    sustained, so DATA frames and bytes show under both classes, on the hub
    (sent) and the edge (received, told by a CLASS frame); control frames
    count both ways; nothing is queued once the transfer is done. The
    edge's STUN server never answers: requests and a timeout result count,
    and no public IP is claimed."""
    p = env.port()
    hp, ep = env.ports(2, hosts=("127.0.0.1",))
    size = 40 << 20
    env.upstream(p, mode="source", source_bytes=size)
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read
    dead.bind(("127.0.0.1", 0))
    env.closers.append(dead.close)
    spec = EdgeSpec("edge-m", [p])
    hub = env.hub([spec], plugins=['{ name = "auth_secret"; }', '{ name = "header_proxy_v1"; }',
                                   '{ name = "classify_elephant"; age_secs = 1; rate_mbit = 8; }',
                                   _plugin(hp)])
    edge = env.edge(hub, spec, plugins_extra=[_plugin(ep)],
                    stun_servers=[f"127.0.0.1:{dead.getsockname()[1]}"])
    _wait_http(hp)
    _wait_http(ep)
    h0 = metrics(hp)
    check(h0['ri_data_sent_bytes_total{class="normal"}'] == 0 and
          h0['ri_data_sent_bytes_total{class="sustained"}'] == 0 and
          h0["ri_window_stalls_total"] == 0, f"before any stream: {h0}")

    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    c.settimeout(T(60))
    c.connect(("127.0.0.2", p))
    c.sendall(b"go")
    # not reading: the edge's window for the stream runs out on the hub
    wait_until(lambda: metrics(hp)["ri_window_stalls_total"] >= 1, T(20),
               "a window stall counted on the hub")
    got = 0
    while got < size:
        d = c.recv(1 << 20)
        check(d, f"the download ended after {got} bytes")
        got += len(d)
        time.sleep(0.02)  # about 50 MB/s: the classifier's 1 s tick sees it
    c.close()
    hub.wait_log(r"classify_elephant: stream 1 \(port %d\) is sustained" % p, timeout_s=T(10))
    wait_until(lambda: metrics(hp)["ri_streams_closed_total"] >= 1, T(20), "the stream closed")

    code, htext = _get(hp, "/metrics")
    promtool(htext)
    h = _samples(htext)
    sent = {k: h[f'ri_data_sent_bytes_total{{class="{k}"}}'] for k in ("normal", "sustained")}
    check(sent["normal"] > 0 and sent["sustained"] > 0 and
          sent["normal"] + sent["sustained"] == h["ri_tunnel_sent_bytes_total"] >= size,
          f"hub bytes by class {sent}, total {h['ri_tunnel_sent_bytes_total']}")
    check(h['ri_data_frames_sent_total{class="normal"}'] > 0 and
          h['ri_data_frames_sent_total{class="sustained"}'] > 0 and
          h["ri_control_frames_sent_total"] > 0 and h["ri_control_frames_received_total"] > 0,
          f"hub frames: {htext}")
    check(h["ri_sched_queued_streams"] == 0 and h["ri_control_queued_bytes"] == 0 and
          h['ri_edge_sched_queued_streams{edge="edge-m"}'] == 0, f"hub queues: {htext}")
    check(not any(k.startswith("ri_edge_public_ip_info") for k in h), "hub: a public IP")

    code, etext = _get(ep, "/metrics")
    promtool(etext)
    e = _samples(etext)
    recv = {k: e[f'ri_data_received_bytes_total{{class="{k}"}}'] for k in ("normal", "sustained")}
    check(recv["sustained"] > 0 and recv["normal"] + recv["sustained"] >= size and
          e['ri_data_frames_received_total{class="sustained"}'] > 0 and
          e["ri_control_frames_received_total"] > 0, f"edge by class: {etext}")
    check(e["ri_stun_requests_total"] >= 2 and e['ri_stun_results_total{result="timeout"}'] >= 1
          and e['ri_stun_results_total{result="ok"}'] == 0 and
          not any(k.startswith("ri_public_ip_info") for k in e), f"edge STUN: {etext}")
