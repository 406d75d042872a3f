"""Certificates: the hub's tls_cert/tls_key and the edge's hub_ca are read
from disk again on every SIGHUP (a renewed file at the same path is taken,
a broken one refused while the old one serves on); a hub without tls_cert
keeps its self-signed certificate in state_dir, so a pinned fingerprint
survives restarts; `ri-core -t` loads and resolves what the daemon would,
each problem as FILE:LINE."""
import hashlib
import os
import re
import socket
import ssl
import stat
import subprocess

from harness import EdgeSpec, T, check, echo_check

FP = r"(sha256:[0-9a-f:]+)"


# ---- a small PKI made with openssl ------------------------------------------------
def _openssl(env, *args):
    r = subprocess.run(["openssl", *args], cwd=env.dir, capture_output=True, text=True,
                       timeout=T(30))
    check(r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}")


def _ca(env, name):
    """A CA (EC P-256) in NAME.pem / NAME.key; returns the certificate's path."""
    _openssl(env, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj",
             f"/CN=ri test {name}", "-days", "30")
    return env.path(f"{name}.pem")


def _leaf(env, ca, name, ip="127.0.0.1"):
    """A new key and a certificate for a hub reached at `ip`, signed by CA
    `ca`; returns (certificate PEM, key PEM)."""
    ext = env.write(f"{name}.ext", f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"
                                   "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl(env, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=ri-hub")
    _openssl(env, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
             f"{ca}.key", "-set_serial", "0x" + os.urandom(8).hex(), "-days", "30",
             "-extfile", ext, "-out", f"{name}.crt")
    return open(env.path(f"{name}.crt")).read(), open(env.path(f"{name}.key")).read()


def _fp_of(pem):
    """sha256 of a PEM certificate's DER, lowercase hex."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _norm(fp):
    return fp.lower().replace("sha256:", "").replace(":", "")


def _colons(hexfp):
    return "sha256:" + ":".join(hexfp[i:i + 2] for i in range(0, len(hexfp), 2))


def _served_fp(port, host="127.0.0.1"):
    """The fingerprint of the certificate a new TLS handshake with the hub
    sees (Python's TLS client, nothing of ri's)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection((host, port), timeout=T(10)) as s:
        with ctx.wrap_socket(s) as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def _put(path, text):
    """Writes over the file in place (same path, same inode), as a renewal
    tool that rewrites its output does."""
    with open(path, "w") as f:
        f.write(text)


def _line_of(path, key):
    """1-based line of the first `key =` in a config file."""
    for i, ln in enumerate(open(path).read().splitlines(), 1):
        if re.match(r"\s*%s\s*=" % re.escape(key), ln):
            return i
    raise AssertionError(f"no {key} in {path}")


# ---- 1: renewed files on SIGHUP ----------------------------------------------------
def test_hub_certificate_renewed_in_place_on_sighup(env):
    p, p2 = env.ports(2)
    env.upstream(p)
    env.upstream(p2)
    _ca(env, "ca")
    crt1, key1 = _leaf(env, "ca", "leaf1")
    crt_path, key_path = env.write("hub.crt", crt1, 0o644), env.write("hub.key", key1)
    spec, later = EdgeSpec("edge-certs", [p]), EdgeSpec("edge-later", [p2])
    hub = env.hub([spec, later], tls_cert=crt_path, tls_key=key_path)
    fp1 = _fp_of(crt1)
    logged = hub.wait_log(r"TLS certificate " + FP).group(1)
    check(_norm(logged) == fp1, f"the hub logs {logged}, its file is {fp1}")
    check(_served_fp(hub.port) == fp1, "a handshake does not see the configured certificate")
    edge = env.edge(hub, spec, hub_ca=env.path("ca.pem"))
    s = env.connect("127.0.0.2", p)
    echo_check(s, b"before the renewal")

    # renewed in place: a new key and a new certificate over the old files
    crt2, key2 = _leaf(env, "ca", "leaf2")
    fp2 = _fp_of(crt2)
    _put(crt_path, crt2)
    _put(key_path, key2)
    m = env.reload(hub)
    hub.wait_log(r"hub: TLS certificate changed: %s -> %s" % (_colons(fp1), _colons(fp2)),
                 since=m)
    check(_served_fp(hub.port) == fp2, "after SIGHUP a new handshake still sees the old "
                                       "certificate")
    # the tunnel made with the old certificate carries on, stream included
    echo_check(s, b"after the renewal, same stream")
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"a new stream on the old tunnel")
    c.close()
    # a new edge that pins the new fingerprint gets in
    e2 = env.edge(hub, later, name="edge-later", bind="127.0.0.3", hub_fingerprint=_colons(fp2))
    c = env.connect("127.0.0.3", p2)
    echo_check(c, b"through a tunnel made after the renewal")
    c.close()

    # files that do not load: the whole reload is refused with an error
    # naming the setting's line and the file; the last good certificate
    # serves on, and the tunnels too
    crt3, key3 = _leaf(env, "ca", "leaf3")
    cert_line, key_line = _line_of(hub.cfg_path, "tls_cert"), _line_of(hub.cfg_path, "tls_key")
    cfg = re.escape(hub.cfg_path)
    cases = [
        ("certificate not PEM", "not a certificate\n", key2,
         r"%s:%d: tls_cert: %s holds no PEM certificate" % (cfg, cert_line, re.escape(crt_path))),
        ("key of another certificate", crt3, key2,
         r"%s:%d: tls_key: the key in %s does not match the certificate in %s"
         % (cfg, key_line, re.escape(key_path), re.escape(crt_path))),
        ("key missing", crt3, None,
         r"%s:%d: tls_key: cannot read %s: No such file or directory"
         % (cfg, key_line, re.escape(key_path))),
    ]
    for what, crt, key, pattern in cases:
        _put(crt_path, crt)
        if key is None:
            os.unlink(key_path)
        else:
            _put(key_path, key)
        m = env.reload(hub, expect_ok=False)
        hub.wait_log(r"error\s+reload: " + pattern, since=m)
        check(hub.count(r"TLS certificate changed", since=m) == 0, f"{what}: the certificate "
                                                                   "changed")
        check(_served_fp(hub.port) == fp2, f"{what}: the hub no longer serves the last good "
                                           "certificate")
        echo_check(s, f"after a refused reload ({what})".encode())
    check(hub.alive() and edge.alive() and e2.alive(), "a process died")
    # mended: the next SIGHUP takes it
    _put(crt_path, crt3)
    env.write("hub.key", key3)
    m = env.reload(hub)
    hub.wait_log(r"hub: TLS certificate changed: %s -> %s" % (_colons(fp2), _colons(_fp_of(crt3))),
                 since=m)
    check(_served_fp(hub.port) == _fp_of(crt3), "the mended certificate is not served")
    echo_check(s, b"still the first stream")
    s.close()


def test_edge_hub_ca_renewed_in_place_on_sighup(env):
    p = env.port()
    env.upstream(p)
    _ca(env, "caA")
    _ca(env, "caB")
    crt_a, key_a = _leaf(env, "caA", "leafA")
    crt_path, key_path = env.write("hub.crt", crt_a, 0o644), env.write("hub.key", key_a)
    spec, probe = EdgeSpec("edge-ca", [p]), EdgeSpec("edge-probe", [])
    hub = env.hub([spec, probe], tls_cert=crt_path, tls_key=key_path)
    ca_path = env.write("hub-ca.pem", open(env.path("caA.pem")).read(), 0o644)
    edge = env.edge(hub, spec, hub_ca=ca_path)
    s = env.connect("127.0.0.2", p)
    echo_check(s, b"verified against CA A")

    # the hub moves to a certificate from CA B
    crt_b, key_b = _leaf(env, "caB", "leafB")
    _put(crt_path, crt_b)
    _put(key_path, key_b)
    m = env.reload(hub)
    hub.wait_log(r"TLS certificate changed: ", since=m)
    # (an edge that trusts only CA A refuses it: the check is real)
    old = env.edge(hub, probe, name="edge-trusts-A", bind="127.0.0.3", wait=False,
                   hub_ca=env.path("caA.pem"))
    old.wait_log(r"closed: hub certificate rejected")
    check(old.count(r"connected to hub") == 0, "an edge trusting CA A took CA B's certificate")
    old.stop()

    # the edge's hub_ca replaced in place by CA B, then SIGHUP: its tunnel
    # (verified when it was made) stays
    em = edge.mark()
    _put(ca_path, open(env.path("caB.pem")).read())
    env.reload(edge)
    edge.wait_log(r"edge: hub_ca %s changed \(1 certificate\): the next connection to the hub "
                  r"is verified against it" % re.escape(ca_path), since=em)
    echo_check(s, b"same tunnel after the CA change")
    s.close()
    check(edge.count(r"connected to hub", since=em) == 0, "the edge reconnected on a CA change")
    # its next connection (the hub restarts) is verified against CA B
    hub.stop()
    hub = env.restart_hub(hub, name="hub-2")
    edge.wait_log(r"edge edge-ca: connected to hub", since=em)
    check(edge.count(r"certificate rejected", since=em) == 0, "the new CA was not used")
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"through a tunnel verified against CA B")
    c.close()

    # a hub_ca that does not load: the reload is refused (error, FILE:LINE,
    # the file named) and the CA loaded last stays for the next connection
    em = edge.mark()
    _put(ca_path, "not a certificate\n")
    env.reload(edge, expect_ok=False)
    edge.wait_log(r"error\s+reload: %s:%d: hub_ca: %s holds no PEM certificate"
                  % (re.escape(edge.cfg_path), _line_of(edge.cfg_path, "hub_ca"),
                     re.escape(ca_path)), since=em)
    hub.stop()
    hub = env.restart_hub(hub, name="hub-3")
    edge.wait_log(r"edge edge-ca: connected to hub", since=em)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"CA B still trusted after a refused reload")
    c.close()


# ---- 2: a self-signed certificate kept across restarts ------------------------------
def test_state_dir_keeps_the_fingerprint_across_restarts(env):
    p = env.port()
    env.upstream(p)
    state = env.path("var/lib/ri")  # none of it exists yet
    spec = EdgeSpec("edge-pin", [p])
    hub = env.hub([spec], state_dir=state)
    fp = hub.wait_log(r"hub: generated a self-signed certificate %s and saved it to %s/hub\.crt "
                      r"\(key %s/hub\.key\)" % (FP, re.escape(state), re.escape(state))).group(1)
    hub.wait_log(r"TLS certificate %s \(self-signed, kept in %s\)" % (re.escape(fp),
                                                                      re.escape(state)))
    check(stat.S_IMODE(os.stat(os.path.join(state, "hub.key")).st_mode) == 0o600,
          "hub.key is not mode 0600")
    check(stat.S_IMODE(os.stat(state).st_mode) == 0o700, "the state folder is not mode 0700")
    crt = open(os.path.join(state, "hub.crt")).read()
    check(_fp_of(crt) == _norm(fp), "hub.crt is not the certificate the hub logged")
    check(_served_fp(hub.port) == _norm(fp), "the hub serves another certificate")
    edge = env.edge(hub, spec, hub_fingerprint=fp)
    c = env.connect("127.0.0.2", p)
    echo_check(c, b"pinned")
    c.close()
    # SIGHUP reads the kept files again: same certificate
    m = env.reload(hub)
    check(hub.count(r"TLS certificate changed|generated", since=m) == 0,
          "a reload changed the kept certificate")
    for n in (2, 3):
        hub.stop()
        em = edge.mark()
        hub = env.restart_hub(hub, name=f"hub-{n}")
        got = hub.wait_log(r"hub: loaded the self-signed certificate %s from %s/hub\.crt"
                           % (FP, re.escape(state))).group(1)
        check(got == fp, f"start {n}: fingerprint {got}, first start {fp}")
        check(hub.count(r"generated") == 0, f"start {n} made a new certificate")
        # the edge that pins it gets back in
        edge.wait_log(r"edge edge-pin: connected to hub", since=em)
        c = env.connect("127.0.0.2", p)
        echo_check(c, f"pinned, after restart {n}".encode())
        c.close()
    check(edge.count(r"does not match hub_fingerprint") == 0, "the pin failed after a restart")
    check(open(os.path.join(state, "hub.crt")).read() == crt, "hub.crt was rewritten")
    # deleting the kept files and SIGHUP makes a new certificate (rotation)
    os.unlink(os.path.join(state, "hub.crt"))
    os.unlink(os.path.join(state, "hub.key"))
    m = env.reload(hub)
    new = hub.wait_log(r"generated a self-signed certificate " + FP, since=m).group(1)
    hub.wait_log(r"TLS certificate changed: %s -> %s" % (re.escape(fp), re.escape(new)), since=m)
    check(_served_fp(hub.port) == _norm(new), "the new certificate is not served")


def test_without_state_dir_the_certificate_is_ephemeral(env):
    spec = EdgeSpec("edge-eph", [])
    hub = env.hub([spec], state_dir="")
    fp1 = hub.wait_log(r'hub: state_dir is "": ephemeral self-signed certificate %s; it changes '
                       r"at every start" % FP).group(1)
    hub.wait_log(r"TLS certificate %s \(ephemeral, self-signed\)" % re.escape(fp1))
    m = env.reload(hub)
    check(hub.count(r"TLS certificate changed", since=m) == 0, "a reload changed the ephemeral "
                                                               "certificate")
    check(_served_fp(hub.port) == _norm(fp1), "the hub serves another certificate")
    hub.stop()
    hub = env.restart_hub(hub, name="hub-2")
    fp2 = hub.wait_log(r"ephemeral self-signed certificate " + FP).group(1)
    check(fp1 != fp2, "two starts without state_dir made the same certificate")
    check(not [f for f in os.listdir(env.dir) if f.endswith((".crt", ".key"))],
          "an ephemeral hub wrote a certificate")


def test_unusable_state_dir_falls_back_to_ephemeral(env):
    spec = EdgeSpec("edge-fallback", [])
    blocker = env.write("not-a-folder", "a file where the state folder's parent should be\n")
    state = os.path.join(blocker, "ri")
    hub = env.hub([spec], state_dir=state)
    hub.wait_log(r"warn\s+hub: state_dir: cannot use %s/hub\.crt: Not a directory: using an "
                 r"ephemeral self-signed certificate instead; edges that pin its fingerprint "
                 r"will be locked out after the next restart" % re.escape(state))
    fp = hub.wait_log(r"TLS certificate %s \(ephemeral, self-signed\)" % FP).group(1)
    # -t says so as an error at the setting's line
    r = env.run_core(["-t", "-c", hub.cfg_path])
    want = f"{hub.cfg_path}:{_line_of(hub.cfg_path, 'state_dir')}: state_dir: cannot use {state}"
    check(r.returncode == 1 and want in r.stderr, f"-t: rc {r.returncode}: {r.stderr}")
    # a kept certificate that does not load is left alone (never silently
    # replaced: edges pin it); a reload keeps the current certificate and
    # applies the rest
    bad = env.path("bad-state")
    os.mkdir(bad, 0o700)
    for f in ("hub.crt", "hub.key"):
        env.write(os.path.join("bad-state", f), "damaged\n")
    m = env.reload_with(hub, state_dir=bad)
    hub.wait_log(r"warn\s+hub: state_dir: %s/hub\.crt holds no PEM certificate .*: keeping the "
                 r"current certificate %s" % (re.escape(bad), re.escape(fp)), since=m)
    check(_served_fp(hub.port) == _norm(fp), "the certificate changed")
    check(all(open(os.path.join(bad, f)).read() == "damaged\n" for f in ("hub.crt", "hub.key")),
          "the damaged files were overwritten")
    r = env.run_core(["-t", "-c", hub.cfg_path])
    check(r.returncode == 1 and "state_dir: %s/hub.crt holds no PEM certificate" % bad in r.stderr,
          f"-t with a damaged kept certificate: rc {r.returncode}: {r.stderr}")


# ---- 3: -t loads and resolves what the daemon would ------------------------------------
def _hub_cfg(env, hub_lines):
    return (f'role = "hub";\nplugin_dir = "{env.plugin_dir}";\n'
            'plugins = ( { name = "auth_secret"; } );\n'
            'hub = {\n  listen = "127.0.0.1:8443";\n'
            + "".join(f"  {ln}\n" for ln in hub_lines) +
            '  edges = ( { id = "e1"; secret = "0123456789abcdef0123"; listen_ports = [ 80 ]; } );\n'
            "};\n")


def _edge_cfg(env, edge_lines):
    return (f'role = "edge";\nplugin_dir = "{env.plugin_dir}";\n'
            'plugins = ( { name = "auth_secret"; }, { name = "listen_tcp"; } );\n'
            'edge = {\n  edge_id = "e1";\n  hub_port = 8443;\n'
            '  secret = "0123456789abcdef0123";\n'
            + "".join(f"  {ln}\n" for ln in edge_lines) + "};\n")


def test_config_check_loads_files_and_names_with_file_and_line(env):
    _ca(env, "ca")
    crt_a, key_a = _leaf(env, "ca", "a")
    crt_b, key_b = _leaf(env, "ca", "b")
    a_crt, a_key, b_key = env.path("a.crt"), env.path("a.key"), env.path("b.key")
    junk = env.write("junk.pem", "not PEM at all\n")
    blocker = env.write("a-file", "x\n")
    # (name, hub or edge lines, line of the error (6 = the first extra line), words)
    hub_cases = [
        ("key of another certificate", [f'tls_cert = "{a_crt}";', f'tls_key = "{b_key}";'], 7,
         f"tls_key: the key in {b_key} does not match the certificate in {a_crt}"),
        ("missing certificate", [f'tls_cert = "{env.path("nope.crt")}";', f'tls_key = "{a_key}";'],
         6, f"tls_cert: cannot read {env.path('nope.crt')}: No such file or directory"),
        ("missing key", [f'tls_cert = "{a_crt}";', f'tls_key = "{env.path("nope.key")}";'], 7,
         f"tls_key: cannot read {env.path('nope.key')}: No such file or directory"),
        ("certificate not PEM", [f'tls_cert = "{junk}";', f'tls_key = "{a_key}";'], 6,
         f"tls_cert: {junk} holds no PEM certificate"),
        ("key not PEM", [f'tls_cert = "{a_crt}";', f'tls_key = "{junk}";'], 7,
         f"tls_key: {junk} holds no usable PEM private key"),
        ("certificate is a folder", [f'tls_cert = "{env.dir}";', f'tls_key = "{a_key}";'], 6,
         f"tls_cert: {env.dir} is a folder, not a file"),
        ("unresolvable target_host", ['target_host = "no-such-host.invalid";'], 6,
         "target_host: cannot resolve no-such-host.invalid"),
        ("state_dir not writable", ['state_dir = "%s/sub";' % blocker], 6,
         f"state_dir: cannot use {blocker}/sub/hub.crt: Not a directory"),
    ]
    for name, lines, line, words in hub_cases:
        path = env.write(f"hub-{name.replace(' ', '-')}.cfg", _hub_cfg(env, lines))
        r = env.run_core(["-t", "-c", path])
        check(r.returncode == 1 and f"{path}:{line}: {words}" in r.stderr,
              f"-t, {name}: rc {r.returncode}, want '{path}:{line}: {words}' in:\n{r.stderr}")
        if "state_dir" in name:
            continue  # the daemon starts, with an ephemeral certificate (tested above)
        # the daemon refuses to start, naming the same place
        r = env.run_core(["-c", path])
        check(r.returncode == 1 and f"{path}:{line}: " in r.stderr,
              f"starting, {name}: rc {r.returncode}:\n{r.stderr}")
    good = env.write("hub-good.cfg", _hub_cfg(env, [f'tls_cert = "{a_crt}";',
                                                    f'tls_key = "{a_key}";']))
    r = env.run_core(["-t", "-c", good])
    check(r.returncode == 0 and "configuration OK" in r.stdout, f"a good pair: {r.stderr}")

    edge_cases = [
        ("missing hub_ca", ['hub_host = "127.0.0.1";', f'hub_ca = "{env.path("nope.pem")}";'], 9,
         f"hub_ca: cannot read {env.path('nope.pem')}: No such file or directory"),
        ("hub_ca not PEM", ['hub_host = "127.0.0.1";', f'hub_ca = "{junk}";'], 9,
         f"hub_ca: {junk} holds no PEM certificate"),
        ("unresolvable hub_host", ['hub_host = "no-such-hub.invalid";'], 8,
         "hub_host: cannot resolve no-such-hub.invalid"),
    ]
    for name, lines, line, words in edge_cases:
        path = env.write(f"edge-{name.replace(' ', '-')}.cfg", _edge_cfg(env, lines))
        r = env.run_core(["-t", "-c", path])
        check(r.returncode == 1 and f"{path}:{line}: {words}" in r.stderr,
              f"-t, {name}: rc {r.returncode}, want '{path}:{line}: {words}' in:\n{r.stderr}")
    # at run time an unresolvable hub_host is no reason to stop: the edge
    # keeps retrying until it resolves
    path = env.path("edge-unresolvable-hub_host.cfg")
    e = env.start_core("edge-unresolvable", path)
    e.wait_log(r"cannot reach hub no-such-hub\.invalid:8443: .*", count=2)
    check(e.alive(), "the edge stopped over an unresolvable hub_host")
    e.stop()
    # a missing hub_ca stops it at start, naming the place
    path = env.path("edge-missing-hub_ca.cfg")
    r = env.run_core(["-c", path])
    check(r.returncode == 1 and f"{path}:9: hub_ca: cannot read" in r.stderr,
          f"starting with a missing hub_ca: rc {r.returncode}:\n{r.stderr}")
    # a token's hub host is reported at the token's line
    tok = env.run_core(["token", "encode", "--hub-host", "no-such-hub.invalid", "--hub-port",
                        "8443", "--edge-id", "e1", "--secret", "0123456789abcdef0123"]).stdout.strip()
    path = env.write("edge-token.cfg", f'role = "edge";\nplugin_dir = "{env.plugin_dir}";\n'
                     'plugins = ( { name = "auth_secret"; }, { name = "listen_tcp"; } );\n'
                     f'edge = {{\n  token = "{tok}";\n}};\n')
    r = env.run_core(["-t", "-c", path])
    check(r.returncode == 1 and f"{path}:5: hub_host: cannot resolve no-such-hub.invalid" in r.stderr,
          f"-t with a token: rc {r.returncode}:\n{r.stderr}")
