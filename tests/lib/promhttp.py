"""promhttp.py -- reading an admin_http plugin from a test: its config
entry, plain GETs, a Prometheus text page as a dict, promtool's check."""
import shutil
import subprocess
import urllib.error
import urllib.request

from harness import T, check, fail, wait_until


def admin_plugin(port):
    """the plugins entry of an admin_http on 127.0.0.1:port"""
    return '{ name = "admin_http"; listen = "127.0.0.1:%d"; }' % port


def http_get(port, path):
    """(status, body text) of GET http://127.0.0.1:port/path"""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=T(10)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_http(port, path="/ready"):
    def up():
        try:
            http_get(port, path)
            return True
        except OSError:
            return False
    wait_until(up, T(20), f"admin_http answering on port {port}")


def samples(text):
    """{'name{labels}': value} of a Prometheus text page"""
    out = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
    return out


def metrics(port):
    """the samples of /metrics"""
    code, text = http_get(port, "/metrics")
    check(code == 200, f"/metrics: {code} {text}")
    return samples(text)


def promtool(text):
    exe = shutil.which("promtool")
    if not exe:
        fail("promtool not installed (apt-get install prometheus)")
    r = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=T(30))
    check(r.returncode == 0, f"promtool check metrics: {r.stdout}{r.stderr}\n{text}")
