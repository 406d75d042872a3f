"""The ri-core command line: config checks, version and help, tokens,
secrets."""
import glob
import json
import os
import re
import socket

from harness import ROOT, check

CONF = os.path.join(ROOT, "conf")


def _examples():
    cfgs = sorted(glob.glob(os.path.join(CONF, "*.cfg")))
    check(len(cfgs) >= 4, f"expected the example configs in {CONF}, found {cfgs}")
    return cfgs


def _resolves(host):
    try:
        socket.getaddrinfo(host, 8443, type=socket.SOCK_STREAM)
        return True
    except OSError:
        return False


def _check_example(r, src):
    """-t of an example passes; conf/edge.cfg's placeholder token names
    hub.example.com, which -t must resolve: where it does not, that is its
    one error (at the token's line) and nothing else is wrong."""
    out = r.stdout + r.stderr
    if "edge.cfg" in src and not _resolves("hub.example.com"):
        errs = [ln for ln in r.stderr.splitlines() if re.match(r"\S+:\d+: ", ln)]
        check(r.returncode == 1 and len(errs) == 1 and
              re.search(r"edge\.cfg:\d+: hub_host: cannot resolve hub\.example\.com", errs[0]),
              f"-t -c {os.path.basename(src)} (hub.example.com does not resolve here): rc "
              f"{r.returncode}:\n{out}")
        return
    check(r.returncode == 0, f"-t -c {os.path.basename(src)} exited {r.returncode}:\n{out}")
    check("configuration OK" in r.stdout, f"{src}: no 'configuration OK' in {r.stdout!r}")
    role = "hub" if "hub" in os.path.basename(src) else "edge"
    check(f"role {role}" in r.stdout, f"{src}: {r.stdout!r} does not say role {role}")


def test_config_check_examples(env):
    """Every example in conf/ passes -t, with plugin_dir pointing at this
    build (copies in a temp folder); and in place when the build is build/."""
    for src in _examples():
        text = open(src).read()
        check(re.search(r'^plugin_dir\s*=', text, re.M), f"{src}: no plugin_dir line")
        text = re.sub(r'^plugin_dir\s*=\s*"[^"]*";', f'plugin_dir = "{env.plugin_dir}";', text,
                      flags=re.M)
        dst = env.write(os.path.basename(src), text)
        _check_example(env.run_core(["-t", "-c", dst]), src)
    if os.path.realpath(env.build) == os.path.realpath(os.path.join(ROOT, "build")):
        for src in _examples():
            _check_example(env.run_core(["-t", "-c", src], cwd=ROOT), src)


def _hub_cfg(env, extra_top="", extra_hub=""):
    return (f'role = "hub";\nplugin_dir = "{env.plugin_dir}";\n'
            'plugins = ( { name = "auth_secret"; }, { name = "header_proxy_v1"; } );\n'
            f"{extra_top}"
            'hub = {\n  listen = "127.0.0.1:8443";\n'
            f"{extra_hub}"
            '  edges = ( { id = "e1"; secret = "0123456789abcdef0123"; listen_ports = [ 80 ]; } );\n'
            "};\n")


def test_config_check_errors_name_file_and_line(env):
    good = env.write("good.cfg", _hub_cfg(env))
    r = env.run_core(["-t", "-c", good])
    check(r.returncode == 0, f"the baseline config fails: {r.stderr}")
    cases = [
        # (name, config text, line of the error, words the message must contain)
        ("unknown key", _hub_cfg(env, extra_hub="  listne = 5;\n"), 6, "unknown key 'listne'"),
        ("syntax error", _hub_cfg(env, extra_hub="  target_host = ;\n"), 6, "syntax error"),
        ("bad range", _hub_cfg(env, extra_hub="  max_streams = 0;\n"), 6, "out of range"),
        ("bad type", _hub_cfg(env, extra_hub='  ping_interval_secs = "soon";\n'), 6,
         "number of seconds"),
        ("bad role", _hub_cfg(env).replace('role = "hub"', 'role = "spoke"'), 1, "role"),
        ("missing plugin", _hub_cfg(env).replace('"header_proxy_v1"', '"no_such_plugin"'), 3,
         "no_such_plugin"),
        # libconfig wraps integers without an L suffix to 32 bits: 2^32 + 100 would be 100
        ("wrapping integer", _hub_cfg(env, extra_hub="  max_streams = 4294967396;\n"), 6,
         "integer 4294967396 is out of range"),
        ("wrapping hex integer", _hub_cfg(env, extra_hub="  max_streams = 0x100000064;\n"), 6,
         "out of range"),
        ("wrapping port", _hub_cfg(env).replace("[ 80 ]", "[\n 4294967376 ]"), 7,
         "integer 4294967376 is out of range"),
        ("wrapping interval", _hub_cfg(env).replace("[ 80 ]", "[ 80 ];\nstun_interval_secs = "
                                                    "4294967596"), 7, "out of range"),
        ("64-bit out of range", _hub_cfg(env, extra_hub="  max_streams = 4294967396L;\n"), 6,
         "'max_streams' = 4294967396 is out of range"),
    ]
    for name, text, line, words in cases:
        path = env.write(f"bad-{name.replace(' ', '-')}.cfg", text)
        r = env.run_core(["-t", "-c", path])
        out = r.stdout + r.stderr
        check(r.returncode != 0, f"{name}: -t exited 0:\n{out}")
        check(f"{path}:{line}:" in out, f"{name}: no '{path}:{line}:' in:\n{out}")
        check(words in out, f"{name}: {words!r} not in:\n{out}")
        # running it (not just -t) refuses to start the same way
        r2 = env.run_core(["-c", path])
        check(r2.returncode != 0 and f"{path}:{line}:" in r2.stderr,
              f"{name}: starting with a bad config: rc {r2.returncode}\n{r2.stderr}")
    r = env.run_core(["-t", "-c", env.path("does-not-exist.cfg")])
    check(r.returncode != 0 and "does-not-exist.cfg" in r.stderr,
          f"a missing file: rc {r.returncode}, {r.stderr!r}")


def test_config_check_loads_what_the_daemon_loads(env):
    """-t fails where starting would: an unresolvable target_host, a
    certificate that is not PEM, a missing hub_ca; a folder as -c is named."""
    junk = env.write("junk.pem", "not a certificate\n")
    cases = [
        ("unresolvable target_host", _hub_cfg(env, extra_hub='  target_host = "no-such-host.invalid";\n'),
         "target_host: cannot resolve no-such-host.invalid"),
        ("certificate not PEM", _hub_cfg(env, extra_hub=f'  tls_cert = "{junk}"; tls_key = "{junk}";\n'),
         f"tls_cert: {junk} holds no PEM certificate"),
    ]
    for name, text, words in cases:
        path = env.write(f"bad-{name.replace(' ', '-')}.cfg", text)
        r = env.run_core(["-t", "-c", path])
        out = r.stdout + r.stderr
        check(r.returncode == 1 and words in out, f"{name}: rc {r.returncode}:\n{out}")
        r2 = env.run_core(["-c", path])
        check(r2.returncode == 1, f"{name}: the daemon started (rc {r2.returncode})")
    edge = env.write("edge.cfg", f'role = "edge";\nplugin_dir = "{env.plugin_dir}";\n'
                     'plugins = ( { name = "auth_secret"; }, { name = "listen_tcp"; } );\n'
                     'edge = { hub_host = "127.0.0.1"; hub_port = 8443; edge_id = "e1";\n'
                     f'  secret = "0123456789abcdef0123"; hub_ca = "{env.path("nope.pem")}"; }};\n')
    r = env.run_core(["-t", "-c", edge])
    check(r.returncode == 1 and f"{edge}:5: hub_ca: cannot read" in r.stderr,
          f"missing hub_ca: rc {r.returncode}: {r.stderr}")
    r = env.run_core(["-t", "-c", env.dir])
    check(r.returncode == 1 and "is a directory" in r.stderr,
          f"a folder as config: rc {r.returncode}: {r.stderr}")


def test_config_with_secrets_readable_by_others_warns(env):
    loose = env.write("loose.cfg", _hub_cfg(env), mode=0o644)
    r = env.run_core(["-t", "-c", loose])
    check(r.returncode == 0 and "readable by group or others (mode 0644): chmod 600" in r.stderr,
          f"a 0644 config with secrets: rc {r.returncode}: {r.stderr!r}")
    tight = env.write("tight.cfg", _hub_cfg(env), mode=0o600)
    r = env.run_core(["-t", "-c", tight])
    check(r.returncode == 0 and "readable" not in r.stderr, f"a 0600 config: {r.stderr!r}")


def test_version_and_help(env):
    for flag in ("-V", "--version"):
        r = env.run_core([flag])
        check(r.returncode == 0, f"{flag} exited {r.returncode}")
        check(re.match(r"ri-core \d+\.\d+\.\d+ \(wire protocol \d+", r.stdout),
              f"{flag} printed {r.stdout!r}")
    for flag in ("-h", "--help"):
        r = env.run_core([flag])
        check(r.returncode == 0, f"{flag} exited {r.returncode}")
        for words in ("usage:", "-c", "token encode", "token decode", "secret"):
            check(words in r.stdout, f"{flag}: {words!r} missing from {r.stdout!r}")
    r = env.run_core(["--no-such-option"])
    check(r.returncode == 2 and "usage:" in r.stderr, f"a bad option: rc {r.returncode}")
    r = env.run_core([])
    check(r.returncode == 2 and "-c" in r.stderr, f"no arguments: rc {r.returncode}")


def test_token_roundtrip(env):
    cases = [("hub.example.com", 8443, "edge-nyc-01", "REPLACE-with-a-long-secret-1"),
             ("127.0.0.1", 1, "e", "s"),
             ("2001:db8::1", 65535, "edge_with-odd.chars~", "x" * 64)]
    for host, port, eid, secret in cases:
        r = env.run_core(["token", "encode", "--hub-host", host, "--hub-port", str(port),
                          "--edge-id", eid, "--secret", secret])
        check(r.returncode == 0, f"encode {eid}: rc {r.returncode} {r.stderr}")
        tok = r.stdout.strip()
        check(re.fullmatch(r"[A-Za-z0-9_-]+", tok), f"token {tok!r} is not URL-safe base64")
        d = env.run_core(["token", "decode", tok])
        check(d.returncode == 0, f"decode: rc {d.returncode} {d.stderr}")
        line = d.stdout.strip()
        check(line.startswith('{"hubHost":'), f"decode printed {line!r}")
        obj = json.loads(line)
        check(list(obj) == ["hubHost", "hubPort", "edgeId", "secret"], f"keys {list(obj)}")
        check(obj == {"hubHost": host, "hubPort": port, "edgeId": eid, "secret": secret},
              f"round trip changed the fields: {obj}")
    # the example edge.cfg token decodes to its documented fields
    m = re.search(r'token = "([^"]+)"', open(os.path.join(CONF, "edge.cfg")).read())
    if m:
        d = env.run_core(["token", "decode", m.group(1)])
        check(d.returncode == 0 and json.loads(d.stdout)["edgeId"] == "edge-nyc-01",
              f"conf/edge.cfg's token: {d.stdout!r} {d.stderr!r}")
    for bad in (["token", "decode", "not-a-token!"], ["token", "decode", "eyJoIjoiaCJ9"],
                ["token", "encode", "--hub-host", "h"], ["token"],
                ["token", "encode", "--hub-host", "h", "--hub-port", "x", "--edge-id", "e",
                 "--secret", "s"]):
        r = env.run_core(bad)
        check(r.returncode != 0, f"{' '.join(bad)} exited 0: {r.stdout!r}")


def test_secret(env):
    seen = set()
    for _ in range(3):
        r = env.run_core(["secret"])
        check(r.returncode == 0, f"secret: rc {r.returncode}")
        s = r.stdout.strip()
        check(re.fullmatch(r"[A-Za-z0-9_-]{43}", s), f"secret {s!r} is not 43 URL-safe chars")
        check(r.stdout == s + "\n", f"secret output {r.stdout!r} is not one line")
        seen.add(s)
    check(len(seen) == 3, "two `ri-core secret` calls printed the same secret")
    r = env.run_core(["secret", "extra"])
    check(r.returncode != 0, "secret with an argument exited 0")


def test_plugins_listing(env):
    cfg = env.write("hub.cfg", _hub_cfg(env))
    r = env.run_core(["plugins", "-c", cfg])
    check(r.returncode == 0, f"plugins: rc {r.returncode} {r.stderr}")
    for name, kind in (("auth_secret", "auth"), ("listen_tcp", "listener"),
                       ("header_proxy_v1", "header")):
        check(re.search(rf"^\s+{name}\s+{kind}\s+ABI \d+\.\d+", r.stdout, re.M),
              f"{name} ({kind}) missing from:\n{r.stdout}")
