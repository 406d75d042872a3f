"""Real PROXY v1 consumers behind the hub: HAProxy (`accept-proxy`) and nginx
(stream `proxy_protocol`) must see the client address and port as the edge
saw them, for IPv4 and IPv6 clients. Missing haproxy/nginx is a failure, not
a skip: `make test-deps` installs them."""
import os
import shutil

from harness import EdgeSpec, check, echo_check, fail, recv_until_eof, wait_listening

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def _need(binary):
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.access(p, os.X_OK)), None)
    if not path:
        fail(f"{binary} is not installed (make test-deps installs it)")
    return path


def _tunnel(env, family):
    """A hub and an edge for one port P; the edge listens on 127.0.0.2 (v4)
    or ::1 (v6), the upstream belongs on 127.0.0.1:P."""
    p = env.port()
    bind = "127.0.0.2" if family == 4 else "::1"
    spec = EdgeSpec(f"edge-v{family}", [p])
    hub = env.hub([spec])
    edge = env.edge(hub, spec, bind=bind)
    # an IPv4 client from its own address, so the hub's (127.0.0.1) cannot pass for it
    src = "127.0.0.5" if family == 4 else "::1"
    return p, bind, src


def _haproxy(env, family):
    exe = _need("haproxy")
    p, bind, src = _tunnel(env, family)
    backend = env.port()
    env.upstream(backend, proxy=False)  # plain echo behind HAProxy
    cfg = env.write("haproxy.cfg", f"""
global
    log stdout format raw local0
    maxconn 200
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{p} accept-proxy
    log-format "SESSION client=%ci:%cp frontend=%fi:%fp bytes=%B"
    default_backend be
backend be
    server echo 127.0.0.1:{backend}
""")
    hp = env.spawn("haproxy", [exe, "-db", "-f", cfg])
    wait_listening("127.0.0.1", p, proc=hp)
    c = env.connect(bind, p, bind=src)
    caddr, cport = c.getsockname()[:2]
    check(caddr == src, f"client address {caddr}")
    echo_check(c, b"through HAProxy " * 64)
    c.close()
    m = hp.wait_log(r"SESSION client=(\S+) frontend=(\S+) bytes=\d+")
    want_client, want_front = f"{src}:{cport}", f"{bind}:{p}"
    check(m.group(1) == want_client, f"HAProxy saw client {m.group(1)}, want {want_client}")
    check(m.group(2) == want_front, f"HAProxy saw frontend {m.group(2)}, want {want_front}")


def _nginx(env, family):
    exe = _need("nginx")
    if not os.path.exists(NGINX_STREAM_MODULE):
        fail(f"{NGINX_STREAM_MODULE} is missing (libnginx-mod-stream; make test-deps)")
    p, bind, src = _tunnel(env, family)
    user = "user root;" if os.geteuid() == 0 else ""
    cfg = env.write("nginx.conf", f"""
load_module {NGINX_STREAM_MODULE};
{user}
daemon off;
worker_processes 1;
pid {env.path('nginx.pid')};
error_log {env.path('nginx-error.log')} info;
events {{ worker_connections 64; }}
stream {{
    server {{
        listen 127.0.0.1:{p} proxy_protocol;
        return "$proxy_protocol_addr $proxy_protocol_port\\n";
    }}
}}
""")
    ng = env.spawn("nginx", [exe, "-p", env.dir, "-c", cfg, "-e", env.path("nginx-error.log")])
    wait_listening("127.0.0.1", p, proc=ng)
    answers = []
    for _ in range(3):
        c = env.connect(bind, p, bind=src)
        caddr, cport = c.getsockname()[:2]
        got = recv_until_eof(c, "nginx's answer").decode()
        c.close()
        want = f"{src} {cport}\n"
        check(got == want, f"nginx answered {got!r}, want {want!r}")
        answers.append(got)
    check(len(set(answers)) == 3, "three clients, but not three different client ports")


def test_haproxy_ipv4(env):
    _haproxy(env, 4)


def test_haproxy_ipv6(env):
    _haproxy(env, 6)


def test_nginx_ipv4(env):
    _nginx(env, 4)


def test_nginx_ipv6(env):
    _nginx(env, 6)
