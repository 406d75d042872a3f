"""admin_http: Prometheus /metrics (checked by promtool), /status.json,
/ready, 404, and the status page rendered by headless Chromium."""
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

from harness import T, EdgeSpec, check, echo_check, fail, wait_until


def _plugin(port):
    return '{ name = "admin_http"; listen = "127.0.0.1:%d"; }' % port


def _get(port, path):
    """(status, body text) of GET http://127.0.0.1:port/path"""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=T(10)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _wait_http(port, path="/ready", proc=None):
    def up():
        try:
            _get(port, path)
            return True
        except OSError:
            return False
    wait_until(up, T(20), f"admin_http answering on port {port}")


def _samples(text):
    """{'name{labels}': value} of a Prometheus text page"""
    out = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
    return out


def _promtool(env, text):
    exe = shutil.which("promtool")
    if not exe:
        fail("promtool not installed (apt-get install prometheus)")
    r = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=T(30))
    check(r.returncode == 0, f"promtool check metrics: {r.stdout}{r.stderr}\n{text}")


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
    _promtool(env, text)
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
    _promtool(env, etext)
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
