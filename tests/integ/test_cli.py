"""The ri-core command line: config checks, version and help, tokens,
secrets."""
import base64
import glob
import json
import os
import re
import subprocess

from harness import ROOT, check

CONF = os.path.join(ROOT, "conf")


def _examples():
    cfgs = sorted(glob.glob(os.path.join(CONF, "*.cfg")))
    check(len(cfgs) >= 4, f"expected the example configs in {CONF}, found {cfgs}")
    return cfgs


TEMPLATES = ("hub.cfg", "edge.cfg")  # deployment templates: placeholder secrets
PLACEHOLDER_MSG = "secret is a placeholder from the examples: replace it with a secret of your own"


def _real_secrets(env, text):
    """An example's text with its placeholder secrets (hub.cfg) or token
    (edge.cfg) replaced by real ones."""
    text = re.sub(r"REPLACE-with-ri-core-secret-output-(\d)",
                  lambda m: f"real-{os.urandom(12).hex()}-{m.group(1)}", text)
    m = re.search(r'^\s*token = "([^"]+)";', text, re.M)
    if m:
        secret = "real-" + os.urandom(12).hex()
        env.secrets.add(secret)
        # a host that resolves anywhere: -t resolves hub_host too
        r = env.run_core(["token", "encode", "--hub-host", "127.0.0.1", "--hub-port",
                          "8443", "--edge-id", "edge-nyc-01", "--secret", secret])
        check(r.returncode == 0, f"token encode: {r.stderr}")
        text = text.replace(m.group(1), r.stdout.strip())
    return text


def test_config_check_examples(env):
    """The loopback examples pass -t as they are (in place, and copied
    anywhere: they name no plugin_dir, ri-core finds the plugins beside
    itself); the deployment templates hub.cfg and edge.cfg are refused for
    their placeholder secrets, with FILE:LINE and what to do, and pass once
    real secrets replace them."""
    for src in _examples():
        base = os.path.basename(src)
        text = open(src).read()
        check(not re.search(r"^\s*plugin_dir\s*=", text, re.M),
              f"{base} sets plugin_dir: a copy elsewhere (/etc/ri) would not find the plugins")
        check("build/" not in text, f"{base} mentions build/: it is installed as it is")
        role = "hub" if "hub" in base else "edge"
        for where, path in (("in place", src), ("copied", env.write(base, text))):
            r = env.run_core(["-t", "-c", path], cwd=ROOT)
            out = r.stdout + r.stderr
            if base in TEMPLATES:
                check(r.returncode == 1, f"{where}: -t -c {base} exited {r.returncode}:\n{out}")
                errs = [ln for ln in r.stderr.splitlines() if re.match(rf"{re.escape(path)}:\d+: ", ln)]
                check(errs and all(PLACEHOLDER_MSG in ln for ln in errs),
                      f"{where}: {base} is not refused for its placeholders (only):\n{out}")
                check("`ri-core secret`" in out, f"{base}: the refusal does not say how to make a "
                                                 f"secret:\n{out}")
                # starting refuses the same way
                r2 = env.run_core(["-c", path], cwd=ROOT)
                check(r2.returncode == 1 and PLACEHOLDER_MSG in r2.stderr,
                      f"{where}: starting with {base}: rc {r2.returncode}\n{r2.stderr}")
                path = env.write("real-" + base, _real_secrets(env, text))
                r = env.run_core(["-t", "-c", path], cwd=ROOT)
                out = r.stdout + r.stderr
            check(r.returncode == 0, f"{where}: -t -c {base} exited {r.returncode}:\n{out}")
            check("configuration OK" in r.stdout, f"{base}: no 'configuration OK' in {r.stdout!r}")
            check(f"role {role}" in r.stdout, f"{base}: {r.stdout!r} does not say role {role}")


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


def test_config_check_loads_the_edges_file(env):
    """-t loads hub.edges_file with the hub's own loader: a missing file is
    an empty list (OK), a valid one is OK, one that does not parse or holds
    a bad entry fails -t with the file named -- as the daemon would refuse
    to start with it."""
    ef = env.path("edges.json")
    cfg = env.write("ef.cfg", _hub_cfg(env, extra_hub=f'  edges_file = "{ef}";\n'))
    r = env.run_core(["-t", "-c", cfg])
    check(r.returncode == 0 and "configuration OK" in r.stdout, f"no file yet: {r.stderr}")
    good = {"version": 1, "edges": [{"id": "e2", "secret": "abcdef0123456789abcd",
                                     "listen_ports": [81]}]}
    env.write("edges.json", json.dumps(good))
    r = env.run_core(["-t", "-c", cfg])
    check(r.returncode == 0 and "configuration OK" in r.stdout, f"a good file: {r.stderr}")
    cases = [
        ("not JSON", '{"version": 1, "edges": [\n  {"id": "e2",,}\n]}\n', f"{ef}:2: "),
        ("a bad port", json.dumps({"version": 1, "edges": [dict(good["edges"][0],
                                                                listen_ports=[0])]}),
         f"{ef}: edges[0] (id 'e2'): listen port must be an integer 1-65535"),
        ("not an object", "[]", f"{ef}: expected"),
    ]
    for name, text, words in cases:
        env.write("edges.json", text)
        r = env.run_core(["-t", "-c", cfg])
        check(r.returncode == 1 and re.search(r"%s:\d+: edges_file: " % re.escape(cfg), r.stderr)
              and words in r.stderr and "configuration test failed" in r.stderr,
              f"{name}: rc {r.returncode}:\n{r.stdout}{r.stderr}")
        r2 = env.run_core(["-c", cfg])
        check(r2.returncode == 1 and words in r2.stderr,
              f"{name}: the daemon started (rc {r2.returncode}): {r2.stderr}")


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
    cases = [("hub.example.com", 8443, "edge-nyc-01", "a-long-secret-of-my-own-1"),
             ("127.0.0.1", 1, "e", "0123456789abcdef"),
             ("2001:db8::1", 65535, "edge_with-odd.chars~" + "x" * 108, "x" * 64)]
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
    # the example edge.cfg token is a placeholder: decoding it says so
    m = re.search(r'token = "([^"]+)"', open(os.path.join(CONF, "edge.cfg")).read())
    check(m, "conf/edge.cfg has no token")
    d = env.run_core(["token", "decode", m.group(1)])
    check(d.returncode == 1 and PLACEHOLDER_MSG in d.stderr,
          f"conf/edge.cfg's token: rc {d.returncode} {d.stdout!r} {d.stderr!r}")
    for bad in (["token", "decode", "not-a-token!"], ["token", "decode", "eyJoIjoiaCJ9"],
                ["token", "encode", "--hub-host", "h"], ["token"],
                ["token", "encode", "--hub-host", "h", "--hub-port", "x", "--edge-id", "e",
                 "--secret", "0123456789abcdef"]):
        r = env.run_core(bad)
        check(r.returncode != 0, f"{' '.join(bad)} exited 0: {r.stdout!r}")


def _edge_cfg(env, edge_id, secret):
    return (f'role = "edge";\nplugin_dir = "{env.plugin_dir}";\n'
            'plugins = ( { name = "auth_secret"; }, { name = "listen_tcp"; } );\n'
            'edge = {\n  hub_host = "127.0.0.1";\n  hub_port = 8443;\n'
            f"  edge_id = {json.dumps(edge_id)};\n  secret = {json.dumps(secret)};\n}};\n")


def test_token_encode_refuses_what_the_edge_refuses(env):
    """An edge id with a space, a 129-character id, a secret shorter than 16
    characters, a placeholder secret: token encode refuses each with the
    same message the edge's and the hub's config checks give (one rule, one
    message), and token decode refuses such a token made elsewhere."""
    good_id, good_secret = "edge-nyc-01", "0123456789abcdef"
    cases = [("edge nyc", good_secret, "edge id has a space at position 5"),
             ("e" * 129, good_secret, "edge id has 129 characters: it must have 1-128"),
             (good_id, "short-secret", "secret has 12 characters: it must have at least 16"),
             (good_id, "REPLACE-with-ri-core-secret-output-1", PLACEHOLDER_MSG)]
    for eid, secret, words in cases:
        # a host that resolves anywhere: -t resolves hub_host too
        r = env.run_core(["token", "encode", "--hub-host", "127.0.0.1", "--hub-port",
                          "8443", "--edge-id", eid, "--secret", secret])
        check(r.returncode == 1 and words in r.stderr and not r.stdout,
              f"encode {eid[:20]!r}/{secret!r}: rc {r.returncode} {r.stdout!r} {r.stderr!r}")
        msg = r.stderr.strip().removeprefix("ri-core: ")
        # a token from another implementation, with the same fields
        raw = json.dumps({"h": "hub.example.com", "p": 8443, "e": eid, "s": secret},
                         separators=(",", ":")).encode()
        tok = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        d = env.run_core(["token", "decode", tok])
        check(d.returncode == 1 and msg in d.stderr, f"decode: rc {d.returncode} {d.stderr!r}")
        # the edge's config check: the same message, at the line
        path = env.write("edge.cfg", _edge_cfg(env, eid, secret))
        t = env.run_core(["-t", "-c", path])
        line = 7 if "edge id" in words else 8
        check(t.returncode == 1 and f"{path}:{line}: {msg}" in t.stderr,
              f"edge -t: rc {t.returncode}: {t.stderr!r} (wanted {path}:{line}: {msg})")
        # the hub's
        hub = _hub_cfg(env).replace('id = "e1"; secret = "0123456789abcdef0123";',
                                    f"id = {json.dumps(eid)}; secret = {json.dumps(secret)};")
        path = env.write("hub.cfg", hub)
        t = env.run_core(["-t", "-c", path])
        check(t.returncode == 1 and f"{path}:6: " in t.stderr and msg in t.stderr,
              f"hub -t: rc {t.returncode}: {t.stderr!r} (wanted {path}:6: ... {msg})")
    # the edge used to take a secret the hub refused: 15 characters are too few on both
    t = env.run_core(["-t", "-c", env.write("edge.cfg", _edge_cfg(env, good_id, "x" * 15))])
    check(t.returncode == 1 and "at least 16" in t.stderr, f"edge with 15: {t.stderr!r}")
    t = env.run_core(["-t", "-c", env.write("edge.cfg", _edge_cfg(env, good_id, "x" * 16))])
    check(t.returncode == 0, f"edge with 16: {t.stderr!r}")


def test_secret_and_token_from_file_or_stdin(env):
    """Secrets and tokens need not be on the command line (ps, shell
    history): --secret-file FILE, --secret -, --secret-file - (standard
    input), token decode - and --token-file FILE; one trailing newline is
    dropped, anything else wrong is a clear error."""
    secret = "from-a-file-" + os.urandom(8).hex()
    env.secrets.add(secret)
    base = ["token", "encode", "--hub-host", "hub.example.com", "--hub-port", "8443",
            "--edge-id", "edge-nyc-01"]
    want = env.run_core(base + ["--secret", secret])
    check(want.returncode == 0, f"encode --secret: {want.stderr}")
    token = want.stdout.strip()
    for name, content in (("plain", secret), ("newline", secret + "\n"), ("crlf", secret + "\r\n")):
        f = env.write(f"secret-{name}", content)
        for args, stdin in (([f"--secret-file", f], None), (["--secret-file", "-"], content),
                            (["--secret", "-"], content)):
            r = env.run_core(base + args, input=stdin)
            check(r.returncode == 0 and r.stdout.strip() == token,
                  f"{name} {args}: rc {r.returncode} {r.stdout!r} {r.stderr!r}")
    tf = env.write("token", token + "\n")
    for args, stdin in ((["token", "decode", "--token-file", tf], None),
                        (["token", "decode", "-"], token + "\n")):
        r = env.run_core(args, input=stdin)
        check(r.returncode == 0 and json.loads(r.stdout)["secret"] == secret,
              f"{args}: rc {r.returncode} {r.stdout!r} {r.stderr!r}")
    bad = [(["--secret-file", env.path("no-such-file")], None, "cannot read the secret from"),
           (["--secret-file", env.write("empty", "")], None, "is empty: expected the secret"),
           (["--secret", "-"], "\n", "standard input is empty"),
           (["--secret-file", env.write("two", secret + "\nmore\n")], None,
            "holds more than one line"),
           (["--secret-file", env.write("short", "short\n")], None, "secret has 5 characters"),
           (["--secret", secret, "--secret-file", tf], None, "give the secret once")]
    for args, stdin, words in bad:
        r = env.run_core(base + args, input=stdin)
        check(r.returncode != 0 and words in r.stderr and not r.stdout,
              f"{args}: rc {r.returncode} {r.stdout!r} {r.stderr!r} (wanted {words!r})")
    r = env.run_core(["token", "decode", "-"], input="")
    check(r.returncode == 1 and "standard input is empty: expected the token" in r.stderr,
          f"decode of nothing: {r.stderr!r}")
    r = env.run_core(["-h"])
    check("--secret-file" in r.stdout and "--token-file" in r.stdout,
          f"-h does not mention --secret-file / --token-file:\n{r.stdout}")


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


def _build_example(env):
    """sdk/examples/sched_prio.c built out of tree into the test's folder."""
    so = env.path("sched_prio.so")
    r = subprocess.run(["cc", "-std=c99", "-O2", "-shared", "-fPIC", "-I",
                        os.path.join(ROOT, "sdk"), "-o", so,
                        os.path.join(ROOT, "sdk", "examples", "sched_prio.c")],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"building sched_prio.so: {r.stderr}")
    return so


def test_plugins_listing_covers_the_configs_own_files(env):
    """`ri-core plugins -c FILE` lists and checks the plugins the config
    loads by `file = ...` too (not only the plugin folder), each with
    FILE:LINE, and exits 1 naming the line of one that would be refused."""
    so = _build_example(env)
    cfg = env.write("site.cfg", _hub_cfg(env).replace(
        '{ name = "header_proxy_v1"; }',
        f'{{ name = "header_proxy_v1"; }},\n  {{ name = "sched_prio"; file = "{so}"; }},\n'
        '  { name = "sched_drr"; enabled = false; }'))
    r = env.run_core(["plugins", "-c", cfg])
    check(r.returncode == 0, f"plugins -c: rc {r.returncode}\n{r.stdout}{r.stderr}")
    check(re.search(rf"^\s+sched_prio\s+sched\s+ABI \d+\.\d+ .*\({re.escape(so)}, "
                    rf"{re.escape(cfg)}:4\)$", r.stdout, re.M),
          f"the config's own plugin file is not listed with its line:\n{r.stdout}")
    check(re.search(rf"^\s+sched_drr\s+disabled \({re.escape(cfg)}:5\)", r.stdout, re.M),
          f"the disabled entry is not listed as such:\n{r.stdout}")
    missing = env.write("missing.cfg", _hub_cfg(env).replace(
        '{ name = "header_proxy_v1"; }',
        f'{{ name = "header_proxy_v1"; }},\n  {{ name = "sched_x"; file = "{env.path("nope.so")}"; }}'))
    r = env.run_core(["plugins", "-c", missing])
    check(r.returncode == 1 and re.search(rf"sched_x\s+REFUSED: {re.escape(missing)}:4: .*"
                                          r"cannot open plugin", r.stdout),
          f"a missing plugin file: rc {r.returncode}\n{r.stdout}{r.stderr}")


def test_plugin_of_the_other_role_is_an_error(env):
    """A listener plugin (edge only) in a hub config, a header plugin (hub
    only) in an edge config: an error with FILE:LINE in -t, at start and
    in `ri-core plugins -c`, not silence."""
    hub = env.write("hub.cfg", _hub_cfg(env).replace(
        '{ name = "header_proxy_v1"; }', '{ name = "header_proxy_v1"; },\n  { name = "listen_tcp"; }'))
    edge = env.write("edge.cfg", _edge_cfg(env, "e1", "0123456789abcdef0123").replace(
        '{ name = "listen_tcp"; }', '{ name = "listen_tcp"; },\n  { name = "header_proxy_v1"; }'))
    for path, name, kind, runs_on, here in ((hub, "listen_tcp", "listener", "edge", "hub"),
                                            (edge, "header_proxy_v1", "header", "hub", "edge")):
        words = (f"{path}:4: plugin '{name}' is a {kind} plugin, which only runs on the "
                 f"{runs_on}: remove it from this {here} config")
        r = env.run_core(["-t", "-c", path])
        check(r.returncode == 1 and words in r.stderr,
              f"-t: rc {r.returncode} {r.stdout!r} {r.stderr!r} (wanted {words!r})")
        r = env.run_core(["-c", path])
        check(r.returncode == 1 and words in r.stderr,
              f"start: rc {r.returncode} {r.stderr!r} (wanted {words!r})")
        r = env.run_core(["plugins", "-c", path])
        check(r.returncode == 1 and re.search(rf"{name}\s+REFUSED: {re.escape(words)}", r.stdout),
              f"plugins -c: rc {r.returncode}\n{r.stdout}")
        # listed but disabled, it is no error (one template for both roles)
        off = open(path).read().replace(f'{{ name = "{name}"; }}',
                                        f'{{ name = "{name}"; enabled = false; }}', 1)
        r = env.run_core(["-t", "-c", env.write("off.cfg", off)])
        check(r.returncode == 0, f"disabled {name}: rc {r.returncode} {r.stderr!r}")
